/* FMA peak loop and multi-stream read loop for AVX-512F.
 *
 * FMA: 16 independent zmm chains.  A chain's FMAs wait
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

float fc_read_loop_avx512(const float *p, int64_t n)
{
    /* Four streams a quarter of the buffer apart, as a GEMV reads several
     * weight rows at once: more lines in flight than one stream's
     * prefetcher keeps, which some memory systems need to saturate. */
    const int64_t q = n / 4;
    const float *a = p, *b = p + q, *c = p + 2 * q, *d = p + 3 * q;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t i = 0; i < q; i += 32) {
        s0 = _mm512_add_ps(s0, _mm512_add_ps(_mm512_load_ps(a + i), _mm512_load_ps(a + i + 16)));
        s1 = _mm512_add_ps(s1, _mm512_add_ps(_mm512_load_ps(b + i), _mm512_load_ps(b + i + 16)));
        s2 = _mm512_add_ps(s2, _mm512_add_ps(_mm512_load_ps(c + i), _mm512_load_ps(c + i + 16)));
        s3 = _mm512_add_ps(s3, _mm512_add_ps(_mm512_load_ps(d + i), _mm512_load_ps(d + i + 16)));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}
