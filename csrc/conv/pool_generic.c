/* Portable pooling kernels (128-bit vectors: SSE2 on x86-64). */
#define FC_ISA generic
#define VBYTES 16
#define KIND pool
#define BODY "pool.inc"
#include "per_isa.inc"
