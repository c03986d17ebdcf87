/* AVX2 pooling kernels. */
#pragma GCC target("avx2,fma")
#define FC_ISA avx2
#define VBYTES 32
#define KIND pool
#define BODY "pool.inc"
#include "per_isa.inc"
