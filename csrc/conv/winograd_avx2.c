/* Winograd tile transforms for the avx2 kernel table (winograd_tf.inc):
 * 32-byte vectors. */
#pragma GCC target("avx2,fma")
#include <string.h>
#include "../internal.h"

#define T float
#define V fc_wv8sf
#define VI fc_wv8si
typedef float V __attribute__((vector_size(32)));
typedef int32_t VI __attribute__((vector_size(32)));
#define L 8
#define SUF s_avx2
#define KERNELS fc_swino_avx2
#include "winograd_tf.inc"

#define T double
#define V fc_wv4df
#define VI fc_wv4di
typedef double V __attribute__((vector_size(32)));
typedef int64_t VI __attribute__((vector_size(32)));
#define L 4
#define SUF d_avx2
#define KERNELS fc_dwino_avx2
#include "winograd_tf.inc"
