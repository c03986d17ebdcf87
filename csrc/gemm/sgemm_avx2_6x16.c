/* fp32 AVX2+FMA micro-kernel, 6 x 16: 12 ymm accumulators + 2 for B + 1
 * broadcast of A fit the 16 registers.  Zen 4 issues two 256-bit FMAs per
 * cycle with 4-cycle latency: 12 chains keep both pipes busy (8 needed). */
#pragma GCC target("avx2,fma")
#define FN fc_sgemm_avx2_6x16
#define T float
#define FC_T_IS_DOUBLE 0
#define MR 6
#define NV 2
#include "ukernel_avx2.inc"
