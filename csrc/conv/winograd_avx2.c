/* AVX2 Winograd tile transforms. */
#pragma GCC target("avx2,fma")
#define FC_ISA avx2
#define VBYTES 32
#define KIND wino
#define BODY "winograd_tf.inc"
#include "per_isa.inc"
