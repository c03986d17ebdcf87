/* Convolution entry points: direct and im2col + GEMM, float and double. */
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "../packed.h"

#define T float
#define SFX(name) fc_s##name
#define GEMM fc_sgemm
#define GEMM_PACK fc_sgemm_pack
#define GEMM_PACKED fc_sgemm_packed
#define KSEL sconv
#include "direct.inc"
#include "im2col.inc"
#include "packed.inc"
#undef T
#undef SFX
#undef GEMM
#undef GEMM_PACK
#undef GEMM_PACKED
#undef KSEL

#define T double
#define SFX(name) fc_d##name
#define GEMM fc_dgemm
#define GEMM_PACK fc_dgemm_pack
#define GEMM_PACKED fc_dgemm_packed
#define KSEL dconv
#include "direct.inc"
#include "im2col.inc"
#include "packed.inc"
#undef T
#undef SFX
#undef GEMM
#undef GEMM_PACK
#undef GEMM_PACKED
#undef KSEL
