/* FMA peak loop for AVX2+FMA: 12 independent ymm chains (8 are needed to
 * cover 2 pipes x 4-cycle latency; 12 + 2 constants fit the 16 registers),
 * and a read loop with 256-bit loads. */
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#include "probe.h"

#define CHAINS 12

static float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

int64_t fc_fma_loop_avx2(int64_t iters, float *sink)
{
    const __m256 mul = _mm256_set1_ps(1.0f - 1e-7f * *sink);
    const __m256 add = _mm256_set1_ps(1e-3f * *sink);
    __m256 acc[CHAINS];
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm256_set1_ps(*sink + (float)i);
    for (int64_t it = 0; it < iters; it++)
        for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm256_fmadd_ps(acc[i], mul, add);
    for (int i = 1; i < CHAINS; i++)
        acc[0] = _mm256_add_ps(acc[0], acc[i]);
    *sink = hsum(acc[0]);
    return iters * CHAINS * 8 * 2;
}

float fc_read_loop_avx2(const float *p, int64_t n)
{
    /* Four accumulators keep several cache lines in flight per iteration. */
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t i = 0; i < n; i += 32) {
        s0 = _mm256_add_ps(s0, _mm256_load_ps(p + i));
        s1 = _mm256_add_ps(s1, _mm256_load_ps(p + i + 8));
        s2 = _mm256_add_ps(s2, _mm256_load_ps(p + i + 16));
        s3 = _mm256_add_ps(s3, _mm256_load_ps(p + i + 24));
    }
    return hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}
