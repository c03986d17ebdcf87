/* AVX2 pooling kernels. */
#pragma GCC target("avx2,fma")
#include <string.h>
#include "../internal.h"

#define T float
#define V fc_pv32sf
#define VI fc_pv32si
typedef float V __attribute__((vector_size(32)));
typedef int32_t VI __attribute__((vector_size(32)));
#define L (32 / 4)
#define SUF s256
#define KERNELS fc_spool_avx2
#include "pool.inc"
#undef T
#undef V
#undef VI
#undef L
#undef SUF
#undef KERNELS

#define T double
#define V fc_pv32df
#define VI fc_pv32di
typedef double V __attribute__((vector_size(32)));
typedef int64_t VI __attribute__((vector_size(32)));
#define L (32 / 8)
#define SUF d256
#define KERNELS fc_dpool_avx2
#include "pool.inc"
