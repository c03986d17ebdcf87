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
 */
#ifndef FC_GEMM_BLOCKING_H
#define FC_GEMM_BLOCKING_H

/* AMD Zen 4 (EPYC 9xx4 class): 32 KiB L1d and 1 MiB L2 per core, 32 MiB L3.
 * L2 feeds 64 B/cycle, so A's micro-panels stream from it without stalls and
 * KC may exceed the L1 rule: a longer KC halves the traffic on C. */
#define FC_ZEN4_L1D (32 << 10)
#define FC_ZEN4_L2 (1 << 20)
#define FC_ZEN4_L3 (32 << 20)

/*                          mc    kc    nc  */
#define FC_BLOCK_SGEMM_AVX512  336,  384, 4096   /* 14 x 32 tile */
#define FC_BLOCK_DGEMM_AVX512  168,  384, 2048   /* 14 x 16 tile */
#define FC_BLOCK_SGEMM_AVX2    288,  384, 4096   /*  6 x 16 tile */
#define FC_BLOCK_DGEMM_AVX2    144,  384, 2048   /*  6 x  8 tile */
#define FC_BLOCK_SGEMM_GENERIC 256,  256, 2048   /*  4 x  8 tile */
#define FC_BLOCK_DGEMM_GENERIC 128,  256, 2048   /*  4 x  4 tile */

#endif
