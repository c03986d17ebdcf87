/* Winograd tile transforms for the avx512 kernel table (winograd_tf.inc):
 * 64-byte vectors. */
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")
#include <string.h>
#include "../internal.h"

#define T float
#define V fc_wv16sf
#define VI fc_wv16si
typedef float V __attribute__((vector_size(64)));
typedef int32_t VI __attribute__((vector_size(64)));
#define L 16
#define SUF s_avx512
#define KERNELS fc_swino_avx512
#include "winograd_tf.inc"

#define T double
#define V fc_wv8df
#define VI fc_wv8di
typedef double V __attribute__((vector_size(64)));
typedef int64_t VI __attribute__((vector_size(64)));
#define L 8
#define SUF d_avx512
#define KERNELS fc_dwino_avx512
#include "winograd_tf.inc"
