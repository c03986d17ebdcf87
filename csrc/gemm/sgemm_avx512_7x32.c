/* fp32 AVX-512F short kernel, 7 x 32, for the last rows of C when at most 7
 * remain: half the 14 x 32 tile's FMAs, still 14 independent chains. */
#pragma GCC target("avx512f")
#define FN fc_sgemm_avx512_7x32
#define T float
#define FC_T_IS_DOUBLE 0
#define MR 7
#define NV 2
#include "ukernel_avx512.inc"
