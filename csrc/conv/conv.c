/* Convolution entry points: direct, im2col + GEMM and Winograd, float and double. */
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "../packed.h"

#define T float
#define SFX(name) fc_s##name
#define KSEL sconv
#define WSEL swino
#include "direct.inc"
#include "im2col.inc"
#include "packed.inc"
#include "winograd.inc"
#undef T
#undef SFX
#undef KSEL
#undef WSEL

#define T double
#define SFX(name) fc_d##name
#define KSEL dconv
#define WSEL dwino
#include "direct.inc"
#include "im2col.inc"
#include "packed.inc"
#include "winograd.inc"
#undef T
#undef SFX
#undef KSEL
#undef WSEL
