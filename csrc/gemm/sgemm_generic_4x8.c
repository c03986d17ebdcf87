/* fp32 portable micro-kernel, 4 x 8: 32 accumulators, eight 4-lane SSE
 * registers on a baseline x86-64 build, half of the 16 available. */
#define FN fc_sgemm_generic_4x8
#define T float
#define MR 4
#define NR 8
#define STORE_TILE fc_store_tile_f32
#include "ukernel_generic.inc"
