/* Private to the machine-limit probes (probe.c and its per-ISA loops). */
#ifndef FASTCONV_PROBE_H
#define FASTCONV_PROBE_H

#include <stdint.h>

/* Run `iters` rounds of independent multiply-add chains seeded from *sink and
 * store a value depending on every chain to *sink, so nothing is optimised
 * away.  Return the floating-point operations performed (a multiply-add
 * counts as 2). */
typedef int64_t (*fc_fma_loop)(int64_t iters, float *sink);

int64_t fc_fma_loop_generic(int64_t iters, float *sink);
int64_t fc_fma_loop_avx2(int64_t iters, float *sink);
int64_t fc_fma_loop_avx512(int64_t iters, float *sink);

/* Sum n floats (n a multiple of 128, p 64-byte aligned) with vector loads. */
typedef float (*fc_read_loop)(const float *p, int64_t n);

float fc_read_loop_generic(const float *p, int64_t n);
float fc_read_loop_avx2(const float *p, int64_t n);
float fc_read_loop_avx512(const float *p, int64_t n);

#endif
