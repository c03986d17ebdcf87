/* fp32 AVX2+FMA short kernel, 3 x 16, for the last rows of C when at most 3
 * remain: 6 accumulators, still enough chains for one FMA pipe. */
#pragma GCC target("avx2,fma")
#define FN fc_sgemm_avx2_3x16
#define T float
#define FC_T_IS_DOUBLE 0
#define MR 3
#define NV 2
#include "ukernel_avx2.inc"
