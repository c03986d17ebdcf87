/* GEMV row-dot kernels (generic), float and double: see gemv_dot.inc. */
#include "../internal.h"

#define FN fc_sdot_generic
#define T float
#include "gemv_dot.inc"

#define FN fc_ddot_generic
#define T double
#include "gemv_dot.inc"
