/* fp32 portable micro-kernels: the tile and its short twin (ukernels.h). */
#define T float
#define STORE_TILE fc_store_tile_f32

#define FN fc_sgemm_generic
#define MR fc_sgemm_generic_mr
#define NR fc_sgemm_generic_nr
#include "ukernel_generic.inc"

#define FN fc_sgemm_generic_short
#define MR fc_sgemm_generic_mr_short
#define NR fc_sgemm_generic_nr
#include "ukernel_generic.inc"
