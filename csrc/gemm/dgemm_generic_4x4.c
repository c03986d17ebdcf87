/* fp64 portable micro-kernel, 4 x 4: 16 accumulators, eight 2-lane SSE2
 * registers on a baseline x86-64 build. */
#define FN fc_dgemm_generic_4x4
#define T double
#define MR 4
#define NR 4
#define STORE_TILE fc_store_tile_f64
#include "ukernel_generic.inc"
