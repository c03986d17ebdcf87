/* fp32 AVX-512F micro-kernel, 14 x 32: 28 zmm accumulators + 2 for B + 1
 * broadcast of A fill the 32 registers.  Zen 4 runs one 512-bit FMA per cycle
 * with 4-cycle latency, so 28 independent chains hide the latency with room
 * to spare, and each k step needs 16 loads for 28 FMAs.  Measured against
 * 6 x 64 and 12 x 32 (fp32, 1 thread, 2048^3 and 1000^3): all three within
 * noise of each other (88-92 GFLOP/s), so the tile with the most
 * accumulators stays; its 7-row half covers the last rows of C.
 * On an Intel core with two 512-bit FMA ports (8 chains in flight at least)
 * the same tile, fed from L1/L2-resident packed panels, runs at 95% of the
 * measured FMA peak; inside a 2048^3 GEMM it runs at ~90% of that, as B's
 * panel then comes from L3 and C's rows lie 8 KiB apart. */
#pragma GCC target("avx512f")
#define FN fc_sgemm_avx512_14x32
#define T float
#define FC_T_IS_DOUBLE 0
#define MR 14
#define NV 2
#include "ukernel_avx512.inc"
