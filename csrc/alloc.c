/* The C core's one allocator: 64-byte aligned (a cache line, a zmm register),
 * with a failure switch so tests can prove that ENOMEM reaches Python. */
#include <stdlib.h>
#include "internal.h"

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
    if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0)
        return NULL;
    return p;
}

void fc_free(void *p) { free(p); }
