/* Measured machine limits: the FMA peak of each ISA and the memory read
 * bandwidth, per thread count.  Benchmark reports quote kernel speed as a
 * fraction of these, so they are measured here rather than taken from a
 * datasheet.  Each probe runs for a fraction of a second. */
#include <omp.h>
#include <string.h>
#include "../internal.h"
#include "probe.h"

/* Portable loops on GCC/Clang vector types: SSE2 on x86-64, NEON on arm64. */
typedef float v4f __attribute__((vector_size(16)));

#define GENERIC_CHAINS 12

int64_t fc_fma_loop_generic(int64_t iters, float *sink)
{
    const v4f mul = (v4f){1, 1, 1, 1} * (1.0f - 1e-7f * *sink);
    const v4f add = (v4f){1, 1, 1, 1} * (1e-3f * *sink);
    v4f acc[GENERIC_CHAINS];
    for (int i = 0; i < GENERIC_CHAINS; i++)
        acc[i] = (v4f){1, 1, 1, 1} * (*sink + (float)i);
    for (int64_t it = 0; it < iters; it++)
        for (int i = 0; i < GENERIC_CHAINS; i++)
            acc[i] = acc[i] * mul + add;
    for (int i = 1; i < GENERIC_CHAINS; i++)
        acc[0] += acc[i];
    *sink = acc[0][0] + acc[0][1] + acc[0][2] + acc[0][3];
    return iters * GENERIC_CHAINS * 4 * 2;
}

float fc_read_loop_generic(const float *p, int64_t n)
{
    v4f s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    for (int64_t i = 0; i < n; i += 16) {
        s0 += *(const v4f *)(p + i);
        s1 += *(const v4f *)(p + i + 4);
        s2 += *(const v4f *)(p + i + 8);
        s3 += *(const v4f *)(p + i + 12);
    }
    v4f s = (s0 + s1) + (s2 + s3);
    return s[0] + s[1] + s[2] + s[3];
}

static int has(int bits) { return (fc_cpu_features() & bits) == bits; }

static fc_fma_loop fma_loop_for(const char *isa)
{
    if (isa == NULL)
        isa = fc_isa_name();
    if (strcmp(isa, "generic") == 0)
        return fc_fma_loop_generic;
    if (strcmp(isa, "avx2") == 0 && has(FC_CPU_AVX2 | FC_CPU_FMA))
        return fc_fma_loop_avx2;
    if (strcmp(isa, "avx512") == 0 && has(FC_CPU_AVX2 | FC_CPU_FMA | FC_CPU_AVX512F))
        return fc_fma_loop_avx512;
    return NULL;
}

/* GFLOP/s of `iters` rounds of `loop` on every one of `threads` threads. */
static double fma_rate(fc_fma_loop loop, int64_t iters, int threads, double *seconds)
{
    int64_t flops = 0;
    float sink = 0;
    fc_place place;
    fc_place_init(&place, threads);
    double t0 = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : flops, sink)
    {
        fc_place_self(&place);
        float s = 1.0f;
        flops += loop(iters, &s);
        sink += s;
    }
    *seconds = omp_get_wtime() - t0;
    /* sink is a sum of finite values by construction; testing it keeps the
     * loops' results live without printing anything. */
    if (sink != sink)
        return 0;
    return flops / *seconds * 1e-9;
}

int fc_probe_fma(const char *isa, int threads, double *gflops)
{
    fc_fma_loop loop = fma_loop_for(isa);
    if (loop == NULL || threads < 1 || gflops == NULL)
        return FC_EINVAL;
    /* Size the loop on this thread alone until one run takes 20 ms (a
     * stalled thread start on a busy machine cannot cut the sizing short),
     * then keep the best of five runs of that length on all threads. */
    int64_t iters = 1 << 12;
    float sink = 1.0f; /* the loops live in other files: their calls stay */
    for (double t0 = omp_get_wtime(); iters < ((int64_t)1 << 40); iters *= 2, t0 = omp_get_wtime()) {
        loop(iters, &sink);
        if (omp_get_wtime() - t0 >= 0.02)
            break;
    }
    double seconds = 0, best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double rate = fma_rate(loop, iters, threads, &seconds);
        best = rate > best ? rate : best;
    }
    *gflops = best;
    return FC_OK;
}

/* GB/s of one pass of `loop` over buf, each thread reading its own slice. */
static double read_rate(fc_read_loop loop, float *buf, int64_t n, int threads, float *sink)
{
    const int64_t slice = n / threads;
    fc_place place;
    fc_place_init(&place, threads);
    float sum = 0;
    double t0 = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : sum)
    {
        fc_place_self(&place);
        sum += loop(buf + (int64_t)omp_get_thread_num() * slice, slice);
    }
    double seconds = omp_get_wtime() - t0;
    *sink += sum;
    return (double)n * sizeof(float) / seconds * 1e-9;
}

int fc_probe_read(int64_t bytes, int threads, double *gbps)
{
    if (bytes < 4096 || threads < 1 || gbps == NULL)
        return FC_EINVAL;
    /* The bound a memory-bound kernel is quoted against is the best streaming
     * read this machine does, so every read loop it has runs and the fastest
     * counts: one stream of 256-bit loads, or several streams of 512-bit ones
     * (some memory systems need more lines in flight than one stream keeps). */
    fc_read_loop loops[3];
    int count = 0;
    loops[count++] = has(FC_CPU_AVX2 | FC_CPU_FMA) ? fc_read_loop_avx2 : fc_read_loop_generic;
    if (has(FC_CPU_AVX2 | FC_CPU_FMA | FC_CPU_AVX512F))
        loops[count++] = fc_read_loop_avx512;
    /* Each thread reads its own slice, a multiple of 128 floats. */
    int64_t n = bytes / sizeof(float) / (128 * threads) * (128 * threads);
    float *buf = fc_alloc((size_t)n * sizeof(float));
    if (buf == NULL)
        return FC_ENOMEM;
    /* Pages are mapped by the threads that read them later. */
    fc_place place;
    fc_place_init(&place, threads);
#pragma omp parallel num_threads(threads)
    {
        fc_place_self(&place);
        memset(buf + (int64_t)omp_get_thread_num() * (n / threads), 0,
               (size_t)(n / threads) * sizeof(float));
    }
    float sink = 0;
    double best = 0;
    /* Per loop: one warm-up pass, then three timed passes; loops alternate. */
    for (int pass = 0; pass < 4; pass++)
        for (int l = 0; l < count; l++) {
            double rate = read_rate(loops[l], buf, n, threads, &sink);
            if (pass >= 1 && rate > best)
                best = rate;
        }
    fc_free(buf);
    *gbps = sink == sink ? best : 0;
    return FC_OK;
}
