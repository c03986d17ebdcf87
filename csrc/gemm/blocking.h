/* Cache blocking of the packed GEMM, one row per micro-kernel (named by its
 * row in ukernels.h, which checks MC and NC against the tile).
 *
 * The five loops (gemm_impl.inc) keep
 *   - one KC x NR micro-panel of B in L1 while the ir loop sweeps it with
 *     every MR x KC micro-panel of A: KC * NR * size ~ half of L1d;
 *   - the MC x KC block of A in L2 across the jr loop: MC * KC * size ~ half
 *     of L2 (the other half holds B's micro-panels and C's lines in flight);
 *   - the KC x NC panel of B in L3 across the ic loop, shared by the threads
 *     that each pack their own: NC * KC * size ~ a quarter of L3.
 * KC may exceed the L1 rule where L2 streams A's panels fast enough: a
 * longer KC means fewer passes over C.  nc_small is NC when all rows of C fit
 * one MC block: each packed B panel then serves one ic pass, so it is kept
 * L2-sized (KC * nc_small * size ~ L2) and read back from L2.
 * The numbers start from those rules, rounded to the tiles, then tuned by
 * measurement on Zen 4 and an Intel Xeon (docs/TUNING.md); one row per ISA
 * serves both. */
#ifndef FC_GEMM_BLOCKING_H
#define FC_GEMM_BLOCKING_H

/*                              mc   kc    nc  nc_small */
#define FC_BLOCK_SGEMM_AVX512   168, 512, 4096, 512
#define FC_BLOCK_DGEMM_AVX512    84, 512, 2048, 2048
#define FC_BLOCK_SGEMM_AVX2     168, 512, 4096, 512
#define FC_BLOCK_DGEMM_AVX2      84, 512, 2048, 2048
#define FC_BLOCK_SGEMM_GENERIC  256, 256, 2048, 1024
#define FC_BLOCK_DGEMM_GENERIC  128, 256, 2048, 512

#endif
