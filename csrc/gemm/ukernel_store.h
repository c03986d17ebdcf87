/* The scalar epilogue shared by every micro-kernel for tiles it cannot store
 * with vectors (C with a column stride other than 1).  The tile has already
 * been spilled to `acc`, row-major with row length nr. */
#ifndef FC_UKERNEL_STORE_H
#define FC_UKERNEL_STORE_H

#include "../internal.h"

#define FC_DEFINE_STORE_TILE(name, T)                                                   \
    static inline void name(const T *acc, int64_t nr, T *c, int64_t rsc, int64_t csc,   \
                            int64_t m, int64_t n, const fc_epilogue *ep)                \
    {                                                                                   \
        const T *bias = (const T *)ep->bias, *slope = (const T *)ep->slope;             \
        for (int64_t i = 0; i < m; i++)                                                 \
            for (int64_t j = 0; j < n; j++) {                                           \
                T *cij = c + i * rsc + j * csc;                                         \
                T x = acc[i * nr + j];                                                  \
                if (ep->accumulate)                                                     \
                    x += *cij;                                                          \
                if (ep->bias_mode == FC_BIAS_PER_ROW)                                   \
                    x += bias[i];                                                       \
                else if (ep->bias_mode == FC_BIAS_PER_COL)                              \
                    x += bias[j];                                                       \
                if (ep->relu && x < 0) /* NaN passes through */                         \
                    x = 0;                                                              \
                else if (ep->slope_mode != FC_BIAS_NONE && x < 0)                       \
                    x *= slope[ep->slope_mode == FC_BIAS_PER_ROW ? i : j];              \
                if (ep->clip && x > (T)ep->clip_max)                                    \
                    x = (T)ep->clip_max;                                                \
                *cij = x;                                                               \
            }                                                                           \
    }

/* Fetch the mr rows of a C tile (row_bytes each, rsc_bytes apart) at the
 * start of a micro-kernel: C's rows are pages apart, and the store at its end
 * would otherwise wait on mr cache and TLB misses in a row. */
static inline __attribute__((always_inline)) void fc_prefetch_tile(const void *c, int64_t rsc_bytes,
                                                                   int mr, int64_t row_bytes)
{
#pragma GCC unroll 32
    for (int i = 0; i < mr; i++) {
        __builtin_prefetch((const char *)c + i * rsc_bytes);
        __builtin_prefetch((const char *)c + i * rsc_bytes + row_bytes - 1);
    }
}

FC_DEFINE_STORE_TILE(fc_store_tile_f32, float)
FC_DEFINE_STORE_TILE(fc_store_tile_f64, double)

#endif
