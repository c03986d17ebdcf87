/* fp64 AVX2+FMA micro-kernels: the tile and its short twin (ukernels.h). */
#pragma GCC target("avx2,fma")
#define T double
#define FC_T_IS_DOUBLE 1
#include "ukernel_avx2.h"

#define FN fc_dgemm_avx2
#define MR fc_dgemm_avx2_mr
#define NR fc_dgemm_avx2_nr
#include "ukernel_simd.inc"

#define FN fc_dgemm_avx2_short
#define MR fc_dgemm_avx2_mr_short
#define NR fc_dgemm_avx2_nr
#include "ukernel_simd.inc"
