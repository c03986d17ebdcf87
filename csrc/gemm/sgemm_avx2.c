/* fp32 AVX2+FMA micro-kernels: the tile and its short twin (ukernels.h). */
#pragma GCC target("avx2,fma")
#define T float
#define FC_T_IS_DOUBLE 0
#include "ukernel_avx2.h"

#define FN fc_sgemm_avx2
#define MR fc_sgemm_avx2_mr
#define NR fc_sgemm_avx2_nr
#include "ukernel_simd.inc"

#define FN fc_sgemm_avx2_short
#define MR fc_sgemm_avx2_mr_short
#define NR fc_sgemm_avx2_nr
#include "ukernel_simd.inc"
