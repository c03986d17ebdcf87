/* fp32 AVX-512F micro-kernel, 14 x 32: 28 zmm accumulators + 2 for B + 1
 * broadcast of A fill the 32 registers.  Zen 4 runs one 512-bit FMA per cycle
 * with 4-cycle latency, so 28 independent chains hide the latency with room
 * to spare, and each k step needs 16 loads for 28 FMAs. */
#pragma GCC target("avx512f")
#define FN fc_sgemm_avx512_14x32
#define T float
#define FC_T_IS_DOUBLE 0
#define MR 14
#define NV 2
#include "ukernel_avx512.inc"
