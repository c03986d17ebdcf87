/* Portable direct-convolution kernels (128-bit vectors: SSE2 on x86-64). */
#include <string.h>
#include "../internal.h"

#define T float
#define V fc_v4sf
#define VI fc_v4si
typedef float V __attribute__((vector_size(16)));
typedef int32_t VI __attribute__((vector_size(16)));
#define L 4
#define NV 2
#define RWM 4
#define DW_RWM 4
#define SUF s128
#define KERNELS fc_sconv_generic
#include "tile.inc"

#define T double
#define V fc_v2df
#define VI fc_v2di
typedef double V __attribute__((vector_size(16)));
typedef int64_t VI __attribute__((vector_size(16)));
#define L 2
#define SUF d128
#define KERNELS fc_dconv_generic
#include "tile.inc"
