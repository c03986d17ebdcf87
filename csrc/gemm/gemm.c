/* GEMM entry points.  First correct version: a strided triple loop,
 * OpenMP over rows of C, accumulating in the element type.  The BLIS-style
 * packed version replaces the body of gemm_T; the ABI stays. */
#include "../internal.h"

#define T float
#define NAME fc_sgemm
#include "gemm_ref.inc"
#undef T
#undef NAME

#define T double
#define NAME fc_dgemm
#include "gemm_ref.inc"
#undef T
#undef NAME
