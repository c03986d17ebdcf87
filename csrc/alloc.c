/* The C core's one allocator: 64-byte aligned (a cache line, a zmm register),
 * with a failure switch so tests can prove that ENOMEM reaches Python. */
#include <pthread.h>
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

/* Freed huge buffers are kept, a few, for a later allocation they fit: the
 * padded inputs and packed panels of a network's layers come back every
 * call, and a fresh one costs a page fault and a zeroed page per 2 MiB (at
 * batch 8, more time than some layers take).  Bounded in count and bytes;
 * off under AddressSanitizer, which must see every free. */
#if defined(__SANITIZE_ADDRESS__)
#define FC_CACHE_SLOTS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FC_CACHE_SLOTS 0
#endif
#endif
#ifndef FC_CACHE_SLOTS
#define FC_CACHE_SLOTS 8
#endif
#define FC_CACHE_BYTES ((size_t)256 << 20)
/* Live huge buffers whose size fc_free must know to cache them. */
#define FC_LIVE_SLOTS 64

typedef struct { void *p; size_t size; } block;
static block cached[FC_CACHE_SLOTS + 1], live[FC_LIVE_SLOTS];
static size_t cached_bytes;
static int lock_word;

static void lock(void)
{
    while (__atomic_exchange_n(&lock_word, 1, __ATOMIC_ACQUIRE))
        while (__atomic_load_n(&lock_word, __ATOMIC_RELAXED)) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
}

static void unlock(void) { __atomic_store_n(&lock_word, 0, __ATOMIC_RELEASE); }

/* A fork child has one thread: a lock another parent thread held is free. */
static void unlock_in_child(void) { lock_word = 0; }

__attribute__((constructor)) static void register_fork_handler(void)
{
    pthread_atfork(NULL, NULL, unlock_in_child);
}

/* The smallest cached block of `size` to 2 * `size` bytes, taken out (its
 * size in *got), or NULL. */
static void *reuse(size_t size, size_t *got)
{
    void *p = NULL;
    lock();
    int best = -1;
    for (int i = 0; i < FC_CACHE_SLOTS; i++)
        if (cached[i].p && cached[i].size >= size && cached[i].size <= 2 * size &&
            (best < 0 || cached[i].size < cached[best].size))
            best = i;
    if (best >= 0) {
        p = cached[best].p;
        *got = cached[best].size;
        cached_bytes -= *got;
        cached[best].p = NULL;
    }
    unlock();
    return p;
}

static void note_live(void *p, size_t size)
{
    lock();
    for (int i = 0; i < FC_LIVE_SLOTS; i++)
        if (!live[i].p) {
            live[i].p = p;
            live[i].size = size;
            break;
        }
    unlock();
}

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
    if (align == FC_HUGE_ALIGN && FC_CACHE_SLOTS > 0) {
        rounded = (rounded + FC_HUGE_ALIGN - 1) & ~(FC_HUGE_ALIGN - 1);
        size_t got = 0;
        p = reuse(rounded, &got);
        if (p) {
            note_live(p, got);
            return p;
        }
    }
    if (posix_memalign(&p, align, rounded ? rounded : 64) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (align == FC_HUGE_ALIGN)
        madvise(p, rounded & ~(FC_HUGE_ALIGN - 1), MADV_HUGEPAGE); /* a hint: failure is harmless */
#endif
    if (align == FC_HUGE_ALIGN && FC_CACHE_SLOTS > 0)
        note_live(p, rounded);
    return p;
}

void fc_free(void *p)
{
    if (p == NULL || FC_CACHE_SLOTS == 0) {
        free(p);
        return;
    }
    void *drop = p;
    lock();
    for (int i = 0; i < FC_LIVE_SLOTS; i++) {
        if (live[i].p != p)
            continue;
        /* A huge buffer: cache it if it fits, else let the largest cached one go. */
        int slot = -1;
        for (int j = 0; j < FC_CACHE_SLOTS; j++)
            if (!cached[j].p)
                slot = j;
        if (slot >= 0 && cached_bytes + live[i].size <= FC_CACHE_BYTES) {
            cached[slot] = live[i];
            cached_bytes += live[i].size;
            live[i].p = NULL;
            drop = NULL;
        } else {
            live[i].p = NULL;
        }
        break;
    }
    unlock();
    free(drop);
}
