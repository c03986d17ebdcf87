/* AVX-512 pooling kernels. */
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")
#include <string.h>
#include "../internal.h"

#define T float
#define V fc_pv64sf
#define VI fc_pv64si
typedef float V __attribute__((vector_size(64)));
typedef int32_t VI __attribute__((vector_size(64)));
#define L (64 / 4)
#define SUF s512
#define KERNELS fc_spool_avx512
#include "pool.inc"
#undef T
#undef V
#undef VI
#undef L
#undef SUF
#undef KERNELS

#define T double
#define V fc_pv64df
#define VI fc_pv64di
typedef double V __attribute__((vector_size(64)));
typedef int64_t VI __attribute__((vector_size(64)));
#define L (64 / 8)
#define SUF d512
#define KERNELS fc_dpool_avx512
#include "pool.inc"
