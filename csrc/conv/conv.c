/* Convolution entry points: direct and im2col + GEMM, float and double. */
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "../packed.h"

#define T float
#define SFX(name) fc_s##name
#define KSEL sconv
#include "direct.inc"
#include "im2col.inc"
#include "packed.inc"
#undef T
#undef SFX
#undef KSEL

#define T double
#define SFX(name) fc_d##name
#define KSEL dconv
#include "direct.inc"
#include "im2col.inc"
#include "packed.inc"
#undef T
#undef SFX
#undef KSEL
