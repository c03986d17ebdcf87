/* The GEMM micro-kernels, one row each: the only place a tile's size is
 * written.  The kernel files compile from it (fc_<x>gemm_<isa> and the short
 * twin fc_<x>gemm_<isa>_short, which covers the last rows of C with the same
 * NR), dispatch.c fills the kernel table from it, the checks below hold the
 * blocking to it, and the tests read it back through fc_gemm_kernel_info().
 *
 * A tile is as large as the ISA's vector registers allow: MR x NR/lanes
 * accumulators plus NR/lanes vectors of B and one broadcast of A, enough
 * independent FMA chains to cover FMA latency x FMA ports (docs/TUNING.md). */
#ifndef FC_GEMM_UKERNELS_H
#define FC_GEMM_UKERNELS_H

#include "blocking.h"

/*  x: s (fp32) or d (fp64)       MR  NR  short MR   cache blocking */
#define FC_GEMM_UKERNELS(X)                                                   \
    X(s, generic, float,           4,  8,  2,        FC_BLOCK_SGEMM_GENERIC)   \
    X(d, generic, double,          4,  4,  2,        FC_BLOCK_DGEMM_GENERIC)   \
    X(s, avx2,    float,           6, 16,  3,        FC_BLOCK_SGEMM_AVX2)      \
    X(d, avx2,    double,          6,  8,  3,        FC_BLOCK_DGEMM_AVX2)      \
    X(s, avx512,  float,          14, 32,  7,        FC_BLOCK_SGEMM_AVX512)    \
    X(d, avx512,  double,         14, 16,  7,        FC_BLOCK_DGEMM_AVX512)

/* Each row as constants fc_<x>gemm_<isa>_mr, _nr, _mr_short, _mc, _kc, _nc,
 * _nc_small, with the blocking rules checked at compile time: packing pads
 * every MC block to whole MR panels and every NC block to whole NR panels
 * inside buffers sized MC x KC and KC x NC. */
#define FC_UK_CONSTANTS_(x, isa, mr, nr, mr_short, mc, kc, nc, nc_small)                   \
    enum { fc_##x##gemm_##isa##_mr = mr, fc_##x##gemm_##isa##_nr = nr,                     \
           fc_##x##gemm_##isa##_mr_short = mr_short, fc_##x##gemm_##isa##_mc = mc,         \
           fc_##x##gemm_##isa##_kc = kc, fc_##x##gemm_##isa##_nc = nc,                     \
           fc_##x##gemm_##isa##_nc_small = nc_small };                                     \
    _Static_assert((mc) % (mr) == 0, "fc_" #x "gemm_" #isa ": MC is a multiple of MR");    \
    _Static_assert((nc) % (nr) == 0 && (nc_small) % (nr) == 0,                             \
                   "fc_" #x "gemm_" #isa ": NC is a multiple of NR");                      \
    _Static_assert((mr_short) <= (mr), "fc_" #x "gemm_" #isa ": the short kernel is shorter");
#define FC_UK_CONSTANTS(x, isa, T, mr, nr, mr_short, blocking) \
    FC_UK_CONSTANTS_(x, isa, mr, nr, mr_short, blocking)
FC_GEMM_UKERNELS(FC_UK_CONSTANTS)
#undef FC_UK_CONSTANTS
#undef FC_UK_CONSTANTS_

#endif
