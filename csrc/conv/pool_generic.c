/* Portable pooling kernels (128-bit vectors: SSE2 on x86-64). */
#include <string.h>
#include "../internal.h"

#define T float
#define V fc_pv16sf
#define VI fc_pv16si
typedef float V __attribute__((vector_size(16)));
typedef int32_t VI __attribute__((vector_size(16)));
#define L (16 / 4)
#define SUF s128
#define KERNELS fc_spool_generic
#include "pool.inc"
#undef T
#undef V
#undef VI
#undef L
#undef SUF
#undef KERNELS

#define T double
#define V fc_pv16df
#define VI fc_pv16di
typedef double V __attribute__((vector_size(16)));
typedef int64_t VI __attribute__((vector_size(16)));
#define L (16 / 8)
#define SUF d128
#define KERNELS fc_dpool_generic
#include "pool.inc"
