/* Winograd tile transforms for the generic kernel table (winograd_tf.inc; SSE2):
 * 16-byte vectors. */
#include <string.h>
#include "../internal.h"

#define T float
#define V fc_wv4sf
#define VI fc_wv4si
typedef float V __attribute__((vector_size(16)));
typedef int32_t VI __attribute__((vector_size(16)));
#define L 4
#define SUF s_generic
#define KERNELS fc_swino_generic
#include "winograd_tf.inc"

#define T double
#define V fc_wv2df
#define VI fc_wv2di
typedef double V __attribute__((vector_size(16)));
typedef int64_t VI __attribute__((vector_size(16)));
#define L 2
#define SUF d_generic
#define KERNELS fc_dwino_generic
#include "winograd_tf.inc"
