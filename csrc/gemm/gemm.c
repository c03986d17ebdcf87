/* GEMM entry points fc_sgemm / fc_dgemm: the packed five-loop GEMM
 * (gemm_impl.inc) and its GEMV path (gemv.inc), written once and
 * instantiated per type. */
#include <pthread.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "../packed.h"

/* Split `extent` into `parts` ranges whose boundaries are multiples of
 * `align`; range `idx` is [*lo, *hi) (possibly empty). */
static void split_range(int64_t extent, int64_t parts, int64_t align, int64_t idx,
                        int64_t *lo, int64_t *hi)
{
    int64_t units = (extent + align - 1) / align;
    int64_t per = units / parts, extra = units % parts;
    int64_t start = idx * per + (idx < extra ? idx : extra);
    int64_t count = per + (idx < extra);
    *lo = start * align < extent ? start * align : extent;
    *hi = (start + count) * align < extent ? (start + count) * align : extent;
}

static int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

/* Threads as a tm x tn grid over C: the split that minimises the largest
 * thread's cost, counted as its multiply-adds plus the elements it packs
 * (each tile row of threads packs its own copy of B, each column its own A). */
static void thread_grid(int64_t m, int64_t n, int64_t k, int64_t mr, int64_t nr,
                        int threads, int *tm, int *tn)
{
    const double pack_cost = 16; /* one packed element ~ 16 multiply-add lanes */
    double best = -1;
    for (int a = 1; a <= threads; a++) {
        if (threads % a)
            continue;
        int b = threads / a;
        double mp = (double)round_up((m + a - 1) / a, mr);
        double np = (double)round_up((n + b - 1) / b, nr);
        double cost = mp * np * (double)k + pack_cost * (mp + np) * (double)k;
        if (best < 0 || cost < best) {
            best = cost;
            *tm = a;
            *tn = b;
        }
    }
}

/* Threads worth waking for this many multiply-adds. */
static int threads_for(double madds)
{
    int t = fc_threads();
    int64_t useful = (int64_t)(madds / (1 << 17)) + 1; /* ~100 us of work per thread */
    return useful < t ? (int)useful : t;
}

/* Pack buffers, one per thread, kept between calls and grown when a call
 * needs more: a fresh multi-MiB allocation per call would cost a page fault
 * per 4 KiB touched.  Freed when the thread exits. */
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_release(void *block) { fc_free(block); }
static void scratch_make_key(void) { pthread_key_create(&scratch_key, scratch_release); }

/* This thread's buffer of at least `bytes`, 64-byte aligned; NULL if out of memory. */
static void *thread_scratch(size_t bytes)
{
    pthread_once(&scratch_once, scratch_make_key);
    size_t *block = pthread_getspecific(scratch_key); /* block[0]: usable bytes */
    if (block && block[0] >= bytes)
        return (char *)block + 64;
    fc_free(block);
    pthread_setspecific(scratch_key, NULL);
    block = fc_alloc(bytes + 64);
    if (!block)
        return NULL;
    block[0] = bytes;
    pthread_setspecific(scratch_key, block);
    return (char *)block + 64;
}

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SUFFIX)

#define T float
#define SUFFIX f32
#define NAME fc_sgemm
#define KERNEL sgemm
#define KTYPE fc_sgemm_kernel
#define STORE_TILE fc_store_tile_f32
#include "gemv.inc"
#include "gemm_impl.inc"
#define PACK fc_sgemm_pack
#define RUN_PACKED fc_sgemm_packed
#define RUN_PANELS_A fc_sgemm_panels_a
#include "packed.inc"
#undef PACK
#undef RUN_PACKED
#undef RUN_PANELS_A
#undef T
#undef SUFFIX
#undef NAME
#undef KERNEL
#undef KTYPE
#undef STORE_TILE

#define T double
#define SUFFIX f64
#define NAME fc_dgemm
#define KERNEL dgemm
#define KTYPE fc_dgemm_kernel
#define STORE_TILE fc_store_tile_f64
#include "gemv.inc"
#include "gemm_impl.inc"
#define PACK fc_dgemm_pack
#define RUN_PACKED fc_dgemm_packed
#define RUN_PANELS_A fc_dgemm_panels_a
#include "packed.inc"
