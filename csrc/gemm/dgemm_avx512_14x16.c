/* fp64 AVX-512F micro-kernel, 14 x 16: the fp32 tile's register budget (28
 * zmm accumulators) with 8 doubles per vector. */
#pragma GCC target("avx512f")
#define FN fc_dgemm_avx512_14x16
#define T double
#define FC_T_IS_DOUBLE 1
#define MR 14
#define NV 2
#include "ukernel_avx512.inc"
