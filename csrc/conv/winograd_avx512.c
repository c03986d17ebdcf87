/* Winograd tile transforms for the avx512 kernel table (winograd_tf.inc). */
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")
#include "../internal.h"

#define T float
#define SUF s_avx512
#define KERNELS fc_swino_avx512
#include "winograd_tf.inc"

#define T double
#define SUF d_avx512
#define KERNELS fc_dwino_avx512
#include "winograd_tf.inc"
