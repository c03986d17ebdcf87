/* Convolution entry points: direct, im2col + GEMM and Winograd, float and double. */
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
#define WSEL swino
#define GEMM_PANELS_A fc_sgemm_panels_a
#include "direct.inc"
#include "im2col.inc"
#include "packed.inc"
#include "winograd.inc"
#undef T
#undef SFX
#undef GEMM
#undef GEMM_PACK
#undef GEMM_PACKED
#undef KSEL
#undef WSEL
#undef GEMM_PANELS_A

#define T double
#define SFX(name) fc_d##name
#define GEMM fc_dgemm
#define GEMM_PACK fc_dgemm_pack
#define GEMM_PACKED fc_dgemm_packed
#define KSEL dconv
#define WSEL dwino
#define GEMM_PANELS_A fc_dgemm_panels_a
#include "direct.inc"
#include "im2col.inc"
#include "packed.inc"
#include "winograd.inc"
#undef T
#undef SFX
#undef GEMM
#undef GEMM_PACK
#undef GEMM_PACKED
#undef KSEL
#undef WSEL
#undef GEMM_PANELS_A
