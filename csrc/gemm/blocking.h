/* Cache blocking of the packed GEMM, per CPU, derived from its cache sizes.
 *
 * The five loops (gemm_impl.inc) keep
 *   - one KC x NR micro-panel of B in L1 while the ir loop sweeps it with
 *     every MR x KC micro-panel of A: KC * NR * size ~ half of L1d;
 *   - the MC x KC block of A in L2 across the jr loop: MC * KC * size ~ half
 *     of L2 (the other half holds B's micro-panels and C's lines in flight);
 *   - the KC x NC panel of B in L3 across the ic loop, shared by the threads
 *     that each pack their own: NC * KC * size ~ a quarter of L3.
 * The numbers below start from those rules and were then rounded to multiples
 * of the tiles and tuned by measurement on the CPU named in each table.
 * (MC a multiple of MR, NC of NR.)
 */
#ifndef FC_GEMM_BLOCKING_H
#define FC_GEMM_BLOCKING_H

/* AMD Zen 4 (EPYC 9xx4 class): 32 KiB L1d and 1 MiB L2 per core, 32 MiB L3.
 * L2 feeds 64 B/cycle, so A's micro-panels stream from it without stalls and
 * KC may exceed the L1 rule: a longer KC halves the traffic on C. */
#define FC_ZEN4_L1D (32 << 10)
#define FC_ZEN4_L2 (1 << 20)
#define FC_ZEN4_L3 (32 << 20)

/* nc_small: NC when all rows of C fit one MC block (small M).  Each packed B
 * panel is then used by one ic pass only, so it is kept L2-sized
 * (KC * nc_small * size ~ L2) and read back from L2 rather than L3.
 *
 * Measured (fp32, 1 thread, against OpenBLAS): KC 512 beat 192, 256 and 384
 * at 2048^3 and 1000^3 by 5-10% (fewer passes over C); MC 168 and 252 tied;
 * nc_small 512 beat 4096 by ~10% at (64, 4096, 4096).  fp64 showed no such
 * gain and lost at (49, 512, 4608) with nc_small 256, so it keeps NC.
 *
 *
 * Re-checked on an Intel Xeon host (AVX-512 with two 512-bit FMA ports, 48 KiB
 * L1d and 2 MiB L2 per core), configurations alternated within one process,
 * 15 rounds each, 2048^3: at 2 threads MC/KC 336/512 and 168/1024 were within
 * 2% of 168/512, while KC 384 (-3%), 112/256 (-6%) and NC 512 or 1024 (-4 to
 * -8%, 1 thread) lost.  So the rows below serve both CPUs and are kept per ISA
 * rather than per CPU model.
 *
 * Where the rest of the time goes there (2048^3, 1 thread, found by removing
 * one thing at a time, as the VM exposes no PMU counters): skipping all
 * packing after the first panel gains ~3%; giving the micro-kernel an
 * L1-resident scratch tile instead of C gains ~9% more (a C block reused from
 * L2 recovers about half of that); B's micro-panel always L1-resident gains
 * nothing.  So C's traffic, not B's or A's, separates the loops from the
 * kernel's isolated speed.  Not better: keeping MC x NC of C in L2 across the
 * pc loop (B packed K x NC at once) -5%; prefetching the next tile's C into
 * L2 one to four kernel calls ahead; padding C's rows off 8 KiB.
 *
 *                              mc   kc    nc  nc_small */
#define FC_BLOCK_SGEMM_AVX512   168, 512, 4096, 512   /* 14 x 32 tile */
#define FC_BLOCK_DGEMM_AVX512    84, 512, 2048, 2048  /* 14 x 16 tile */
#define FC_BLOCK_SGEMM_AVX2     168, 512, 4096, 512   /*  6 x 16 tile */
#define FC_BLOCK_DGEMM_AVX2      84, 512, 2048, 2048  /*  6 x  8 tile */
#define FC_BLOCK_SGEMM_GENERIC  256, 256, 2048, 1024  /*  4 x  8 tile */
#define FC_BLOCK_DGEMM_GENERIC  128, 256, 2048, 512   /*  4 x  4 tile */

#endif
