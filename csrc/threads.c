/* Threads of the C core: how many each parallel region uses, and where they run. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "internal.h"

static int num_threads; /* 0 until first asked: then OMP_NUM_THREADS or cores */

static int default_threads(void)
{
    const char *env = getenv("OMP_NUM_THREADS");
    if (env) {
        int n = atoi(env);
        if (n > 0)
            return n;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (int)cores : 1;
}

void fc_set_num_threads(int n) { __atomic_store_n(&num_threads, n > 0 ? n : 1, __ATOMIC_RELAXED); }

int fc_get_num_threads(void)
{
    int n = __atomic_load_n(&num_threads, __ATOMIC_RELAXED);
    if (n == 0) {
        n = default_threads();
        __atomic_store_n(&num_threads, n, __ATOMIC_RELAXED);
    }
    return n;
}

/* The calling thread's own count, set by a binding (the Python glue) before
 * each call so that threads calling at once can use different counts. */
static _Thread_local int local_threads; /* 0: the library-wide count */

void fc_set_local_num_threads(int n) { local_threads = n > 0 ? n : 0; }

int fc_threads(void) { return local_threads > 0 ? local_threads : fc_get_num_threads(); }

int fc_swap_local_threads(int n)
{
    int before = local_threads;
    local_threads = n > 0 ? n : 0;
    return before;
}

/* ---- placement ---------------------------------------------------------
 * Why: OpenMP's worker threads sleep between calls, and the scheduler may
 * wake one on the CPU of the thread that woke it -- the caller, which is busy
 * with its own share.  Both then run on one CPU while the other idles, and
 * since OpenMP threads wait by spinning, not yielding, each holds the CPU for
 * a whole scheduler tick.  Measured on a 2-core host: 9 to 20 of 64 calls of
 * a 0.6 ms GEMM (784 x 128 x 1152, 2 threads) took 8 ms, in runs, after the
 * threads had slept 0.1 s; with every worker kept off the caller's CPU, none
 * did.  So each worker binds itself to a CPU of the caller's allowed set
 * other than the caller's current one.  The caller itself is never bound (it
 * is the user's thread); a worker's binding changes only when the caller has
 * moved.  With more threads than allowed CPUs nothing is bound. */

#ifdef __linux__
void fc_place_init(fc_place *p, int threads)
{
    p->master_cpu = -1;
    cpu_set_t *allowed = (cpu_set_t *)p->allowed;
    _Static_assert(sizeof p->allowed >= sizeof(cpu_set_t), "fc_place.allowed too small");
    if (threads < 2 || sched_getaffinity(0, sizeof(cpu_set_t), allowed) != 0)
        return;
    int cpu = sched_getcpu();
    if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, allowed) || CPU_COUNT(allowed) < threads)
        return;
    p->master_cpu = cpu;
}

void fc_place_self(const fc_place *p)
{
    static __thread int bound_to = -1;
    int t = 0;
#ifdef _OPENMP
    t = omp_get_thread_num();
#endif
    if (t == 0 || p->master_cpu < 0)
        return;
    /* The t-th allowed CPU after the caller's, cyclically. */
    const cpu_set_t *allowed = (const cpu_set_t *)p->allowed;
    int cpu = p->master_cpu;
    for (int seen = 0; seen < t;) {
        cpu = (cpu + 1) % CPU_SETSIZE;
        seen += CPU_ISSET(cpu, allowed) != 0;
    }
    if (cpu == bound_to)
        return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof one, &one) == 0)
        bound_to = cpu;
}
#else
void fc_place_init(fc_place *p, int threads) { (void)threads; p->master_cpu = -1; }
void fc_place_self(const fc_place *p) { (void)p; }
#endif

void fc_place_workers(int threads)
{
    fc_place place;
    fc_place_init(&place, threads);
    if (place.master_cpu < 0)
        return;
    #pragma omp parallel num_threads(threads)
    fc_place_self(&place);
}
