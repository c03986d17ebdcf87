/* The C core's one allocator: 64-byte aligned (a cache line, a zmm register),
 * with a failure switch so tests can prove that ENOMEM reaches Python. */
#include <stdlib.h>
#include <sys/mman.h>
#include "internal.h"

/* Buffers of this size and more (GEMM pack buffers, padded conv inputs) are
 * aligned to 2 MiB and offered huge pages: the packed B panel of a large
 * GEMM spans thousands of 4 KiB pages, more than the TLB holds. */
#define FC_HUGE_BYTES ((size_t)4 << 20)
#define FC_HUGE_ALIGN ((size_t)2 << 20)

static int64_t allocs_left = -1; /* < 0: unlimited */

void fc_debug_fail_allocs_after(int64_t n) { __atomic_store_n(&allocs_left, n, __ATOMIC_SEQ_CST); }

void *fc_alloc(size_t bytes)
{
    int64_t left = __atomic_load_n(&allocs_left, __ATOMIC_SEQ_CST);
    if (left >= 0) {
        if (left == 0)
            return NULL;
        __atomic_sub_fetch(&allocs_left, 1, __ATOMIC_SEQ_CST);
    }
    void *p = NULL;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    size_t align = rounded >= FC_HUGE_BYTES ? FC_HUGE_ALIGN : 64;
    if (posix_memalign(&p, align, rounded ? rounded : 64) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (align == FC_HUGE_ALIGN)
        madvise(p, rounded & ~(FC_HUGE_ALIGN - 1), MADV_HUGEPAGE); /* a hint: failure is harmless */
#endif
    return p;
}

void fc_free(void *p) { free(p); }
