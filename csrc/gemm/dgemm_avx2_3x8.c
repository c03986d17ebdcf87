/* fp64 AVX2+FMA short kernel, 3 x 8, for the last rows of C when at most 3
 * remain. */
#pragma GCC target("avx2,fma")
#define FN fc_dgemm_avx2_3x8
#define T double
#define FC_T_IS_DOUBLE 1
#define MR 3
#define NV 2
#include "ukernel_avx2.inc"
