/* GEMV kernels (generic), float and double: see gemv_dot.inc. */
#include "../internal.h"

#define DOT fc_sdot_generic
#define AXPY fc_saxpy_generic
#define T float
#include "gemv_dot.inc"

#define DOT fc_ddot_generic
#define AXPY fc_daxpy_generic
#define T double
#include "gemv_dot.inc"
