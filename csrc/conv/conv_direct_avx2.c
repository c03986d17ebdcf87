/* AVX2 direct-convolution kernels: 16 registers hold 6 pixels x 2 ymm of
 * output channels, two weight vectors and the broadcast input. */
#pragma GCC target("avx2,fma")
#include <string.h>
#include "../internal.h"

#define T float
#define V fc_v8sf
#define VI fc_v8si
typedef float V __attribute__((vector_size(32)));
typedef int32_t VI __attribute__((vector_size(32)));
#define L 8
#define NV 2
#define RWM 6
#define DW_RWM 4
#define SUF s256
#define KERNELS fc_sconv_avx2
#include "tile.inc"

#define T double
#define V fc_v4df
#define VI fc_v4di
typedef double V __attribute__((vector_size(32)));
typedef int64_t VI __attribute__((vector_size(32)));
#define L 4
#define SUF d256
#define KERNELS fc_dconv_avx2
#include "tile.inc"
