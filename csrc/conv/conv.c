/* Convolution entry points: direct and im2col + GEMM, float and double. */
#include <string.h>
#include <omp.h>
#include "../packed.h"

#define T float
#define SFX(name) fc_s##name
#define GEMM fc_sgemm
#define KSEL sconv
#include "direct.inc"
#include "packed.inc"
#include "im2col.inc"
#undef T
#undef SFX
#undef GEMM
#undef KSEL

#define T double
#define SFX(name) fc_d##name
#define GEMM fc_dgemm
#define KSEL dconv
#include "direct.inc"
#include "packed.inc"
#include "im2col.inc"
#undef T
#undef SFX
#undef GEMM
#undef KSEL
