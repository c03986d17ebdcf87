/* AVX-512 pooling kernels. */
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")
#define FC_ISA avx512
#define VBYTES 64
#define KIND pool
#define BODY "pool.inc"
#include "per_isa.inc"
