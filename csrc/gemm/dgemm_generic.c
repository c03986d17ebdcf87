/* fp64 portable micro-kernels: the tile and its short twin (ukernels.h). */
#define T double
#define STORE_TILE fc_store_tile_f64

#define FN fc_dgemm_generic
#define MR fc_dgemm_generic_mr
#define NR fc_dgemm_generic_nr
#include "ukernel_generic.inc"

#define FN fc_dgemm_generic_short
#define MR fc_dgemm_generic_mr_short
#define NR fc_dgemm_generic_nr
#include "ukernel_generic.inc"
