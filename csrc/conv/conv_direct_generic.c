/* Portable direct-convolution kernels (128-bit vectors: SSE2 on x86-64). */
#define FC_ISA generic
#define VBYTES 16
#define NV 2      /* vectors of output channels per tile */
#define RWM 4     /* pixels of a general tile */
#define DW_RWM 4  /* pixels of a depthwise tile */
#define DW_ROWS 4 /* output rows x vectors of a planar 3x3 depthwise block */
#define DW_COLS 1
#define KIND conv
#define BODY "tile.inc"
#include "per_isa.inc"
