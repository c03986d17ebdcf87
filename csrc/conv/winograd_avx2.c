/* Winograd tile transforms for the avx2 kernel table (winograd_tf.inc). */
#pragma GCC target("avx2,fma")
#include "../internal.h"

#define T float
#define SUF s_avx2
#define KERNELS fc_swino_avx2
#include "winograd_tf.inc"

#define T double
#define SUF d_avx2
#define KERNELS fc_dwino_avx2
#include "winograd_tf.inc"
