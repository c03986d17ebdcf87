/* Portable Winograd tile transforms (128-bit vectors: SSE2 on x86-64). */
#define FC_ISA generic
#define VBYTES 16
#define KIND wino
#define BODY "winograd_tf.inc"
#include "per_isa.inc"
