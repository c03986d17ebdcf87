/* GEMV kernels (avx512), float and double: see gemv_dot.inc. */
#pragma GCC target("avx512f")
#include "../internal.h"

#define DOT fc_sdot_avx512
#define AXPY fc_saxpy_avx512
#define T float
#include "gemv_dot.inc"

#define DOT fc_ddot_avx512
#define AXPY fc_daxpy_avx512
#define T double
#include "gemv_dot.inc"
