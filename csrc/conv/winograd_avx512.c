/* AVX-512 Winograd tile transforms. */
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")
#define FC_ISA avx512
#define VBYTES 64
#define KIND wino
#define BODY "winograd_tf.inc"
#include "per_isa.inc"
