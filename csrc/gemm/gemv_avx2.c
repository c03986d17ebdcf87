/* GEMV kernels (avx2), float and double: see gemv_dot.inc. */
#pragma GCC target("avx2,fma")
#include "../internal.h"

#define DOT fc_sdot_avx2
#define AXPY fc_saxpy_avx2
#define T float
#include "gemv_dot.inc"

#define DOT fc_ddot_avx2
#define AXPY fc_daxpy_avx2
#define T double
#include "gemv_dot.inc"
