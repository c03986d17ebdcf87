/* fp64 AVX2+FMA micro-kernel, 6 x 8: the fp32 tile's register budget (12 ymm
 * accumulators) with 4 doubles per vector. */
#pragma GCC target("avx2,fma")
#define FN fc_dgemm_avx2_6x8
#define T double
#define FC_T_IS_DOUBLE 1
#define MR 6
#define NV 2
#include "ukernel_avx2.inc"
