/* FMA peak loop for AVX-512F: 16 independent zmm chains.  A chain's FMAs wait
 * on each other (4-cycle latency), so filling two FMA pipes needs at least
 * 8 chains in flight; 16 leaves margin and still fits the 32 registers. */
#pragma GCC target("avx512f")
#include <immintrin.h>
#include "probe.h"

#define CHAINS 16

int64_t fc_fma_loop_avx512(int64_t iters, float *sink)
{
    const __m512 mul = _mm512_set1_ps(1.0f - 1e-7f * *sink);
    const __m512 add = _mm512_set1_ps(1e-3f * *sink);
    __m512 acc[CHAINS];
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm512_set1_ps(*sink + (float)i);
    for (int64_t it = 0; it < iters; it++)
        for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm512_fmadd_ps(acc[i], mul, add);
    for (int i = 1; i < CHAINS; i++)
        acc[0] = _mm512_add_ps(acc[0], acc[i]);
    *sink = _mm512_reduce_add_ps(acc[0]);
    return iters * CHAINS * 16 * 2;
}
