/* fp64 AVX-512F micro-kernels: the tile and its short twin (ukernels.h). */
#pragma GCC target("avx512f")
#define T double
#define FC_T_IS_DOUBLE 1
#include "ukernel_avx512.h"

#define FN fc_dgemm_avx512
#define MR fc_dgemm_avx512_mr
#define NR fc_dgemm_avx512_nr
#include "ukernel_simd.inc"

#define FN fc_dgemm_avx512_short
#define MR fc_dgemm_avx512_mr_short
#define NR fc_dgemm_avx512_nr
#include "ukernel_simd.inc"
