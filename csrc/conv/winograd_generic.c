/* Winograd tile transforms for the generic kernel table (winograd_tf.inc; SSE2). */
#include "../internal.h"

#define T float
#define SUF s_generic
#define KERNELS fc_swino_generic
#include "winograd_tf.inc"

#define T double
#define SUF d_generic
#define KERNELS fc_dwino_generic
#include "winograd_tf.inc"
