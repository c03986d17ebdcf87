/* Portable direct-convolution kernels (128-bit vectors: SSE2 on x86-64). */
#define FC_ISA generic
#define VBYTES 16
#define NV 2      /* vectors of output channels per tile */
#define RWM 4     /* pixels of a general tile */
#define DW_RWM 4  /* pixels of a depthwise tile */
#define KIND conv
#define BODY "tile.inc"
#include "per_isa.inc"
