/* Greedy non-maximum suppression (fastconv.h: fc_nms).  The arithmetic is
 * float throughout, with NumPy's NaN rules for min and max, so that a box
 * keeps or loses out exactly as in float32 NumPy. */
#include <math.h>
#include <stdlib.h>
#include "../internal.h"

typedef struct {
    float score;
    int64_t image, index;
} ranked;

/* Descending score, NaN last; then ascending image, then position: a total
 * order, so qsort's instability cannot show. */
static int by_rank(const void *p, const void *q)
{
    const ranked *a = p, *b = q;
    const int an = isnan(a->score), bn = isnan(b->score);
    if (an != bn)
        return an - bn;
    if (!an && a->score != b->score)
        return a->score > b->score ? -1 : 1;
    if (a->image != b->image)
        return a->image < b->image ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

/* np.minimum / np.maximum: NaN if either is. */
static inline float nan_min(float a, float b) { return (a < b || isnan(a)) ? a : b; }
static inline float nan_max(float a, float b) { return (a > b || isnan(a)) ? a : b; }

int fc_nms(int64_t n, const float *boxes, const float *scores, const int64_t *image,
           float threshold, int mode, int64_t *keep, int64_t *kept)
{
    if (n < 0 || !kept || (mode != FC_NMS_IOU && mode != FC_NMS_MIN))
        return FC_EINVAL;
    *kept = 0;
    if (n == 0)
        return FC_OK;
    ranked *order = fc_alloc((size_t)n * sizeof *order);
    float *box = fc_alloc((size_t)n * 5 * sizeof *box); /* x1, y1, x2, y2, area by rank */
    int64_t *alive = fc_alloc((size_t)n * sizeof *alive);
    if (!order || !box || !alive) {
        fc_free(order), fc_free(box), fc_free(alive);
        return FC_ENOMEM;
    }
    for (int64_t i = 0; i < n; i++)
        order[i] = (ranked){scores[i], image ? image[i] : 0, i};
    qsort(order, (size_t)n, sizeof *order, by_rank);
    const float one = mode == FC_NMS_MIN ? 1.0f : 0.0f;
    for (int64_t r = 0; r < n; r++) {
        const float *b = boxes + order[r].index * 4;
        float *o = box + r * 5;
        o[0] = b[0], o[1] = b[1], o[2] = b[2], o[3] = b[3];
        o[4] = (b[2] - b[0] + one) * (b[3] - b[1] + one);
        alive[r] = r;
    }
    /* Keep the first alive box, drop the alive boxes it suppresses, repeat. */
    int64_t left = n, count = 0;
    while (left > 0) {
        const int64_t best = alive[0];
        const float *a = box + best * 5;
        keep[count++] = order[best].index;
        int64_t still = 0;
        for (int64_t t = 1; t < left; t++) {
            const int64_t r = alive[t];
            const float *b = box + r * 5;
            if (order[r].image == order[best].image) {
                float w = nan_min(a[2], b[2]) - nan_max(a[0], b[0]) + one;
                float h = nan_min(a[3], b[3]) - nan_max(a[1], b[1]) + one;
                w = w <= 0 ? 0 : w; /* np.maximum(w, 0): NaN stays */
                h = h <= 0 ? 0 : h;
                const float inter = w * h;
                const int drop = mode == FC_NMS_MIN ? !(inter / nan_min(a[4], b[4]) <= threshold)
                                                    : inter / (a[4] + b[4] - inter) > threshold;
                if (drop)
                    continue;
            }
            alive[still++] = r;
        }
        left = still;
    }
    *kept = count;
    fc_free(order), fc_free(box), fc_free(alive);
    return FC_OK;
}
