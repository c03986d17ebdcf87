/* fp32 AVX-512F micro-kernels: the tile and its short twin (ukernels.h). */
#pragma GCC target("avx512f")
#define T float
#define FC_T_IS_DOUBLE 0
#include "ukernel_avx512.h"

#define FN fc_sgemm_avx512
#define MR fc_sgemm_avx512_mr
#define NR fc_sgemm_avx512_nr
#include "ukernel_simd.inc"

#define FN fc_sgemm_avx512_short
#define MR fc_sgemm_avx512_mr_short
#define NR fc_sgemm_avx512_nr
#include "ukernel_simd.inc"
