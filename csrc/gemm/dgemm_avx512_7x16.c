/* fp64 AVX-512F short kernel, 7 x 16, for the last rows of C when at most 7
 * remain. */
#pragma GCC target("avx512f")
#define FN fc_dgemm_avx512_7x16
#define T double
#define FC_T_IS_DOUBLE 1
#define MR 7
#define NV 2
#include "ukernel_avx512.inc"
