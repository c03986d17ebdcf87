/* AVX-512 direct-convolution kernels: 32 registers hold 14 pixels x 2 zmm
 * of output channels plus the two weight vectors. */
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")
#define FC_ISA avx512
#define VBYTES 64
#define NV 2      /* vectors of output channels per tile */
#define RWM 14    /* pixels of a general tile */
#define DW_RWM 8  /* pixels of a depthwise tile */
#define DW_ROWS 4 /* output rows x vectors of a planar 3x3 depthwise block */
#define DW_COLS 2
#define KIND conv
#define BODY "tile.inc"
#include "per_isa.inc"
