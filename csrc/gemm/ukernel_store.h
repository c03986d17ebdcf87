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
        const T *bias = (const T *)ep->bias;                                            \
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
                *cij = x;                                                               \
            }                                                                           \
    }

FC_DEFINE_STORE_TILE(fc_store_tile_f32, float)
FC_DEFINE_STORE_TILE(fc_store_tile_f64, double)

#endif
