/* AVX-512 direct-convolution kernels: 32 registers hold 14 pixels x 2 zmm
 * of output channels plus the two weight vectors. */
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")
#include <string.h>
#include "../internal.h"

#define T float
#define V fc_v16sf
#define VI fc_v16si
typedef float V __attribute__((vector_size(64)));
typedef int32_t VI __attribute__((vector_size(64)));
#define L 16
#define NV 2
#define RWM 14
#define DW_RWM 8
#define SUF s512
#define KERNELS fc_sconv_avx512
#include "tile.inc"

#define T double
#define V fc_v8df
#define VI fc_v8di
typedef double V __attribute__((vector_size(64)));
typedef int64_t VI __attribute__((vector_size(64)));
#define L 8
#define SUF d512
#define KERNELS fc_dconv_avx512
#include "tile.inc"
