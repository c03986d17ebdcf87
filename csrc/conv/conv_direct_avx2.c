/* AVX2 direct-convolution kernels: 16 registers hold 6 pixels x 2 ymm of
 * output channels, two weight vectors and the broadcast input. */
#pragma GCC target("avx2,fma")
#define FC_ISA avx2
#define VBYTES 32
#define NV 2      /* vectors of output channels per tile */
#define RWM 6     /* pixels of a general tile */
#define DW_RWM 4  /* pixels of a depthwise tile */
#define DW_ROWS 4 /* output rows x vectors of a planar 3x3 depthwise block */
#define DW_COLS 1
#define KIND conv
#define BODY "tile.inc"
#include "per_isa.inc"
