/* Greedy non-maximum suppression (fastconv.h: fc_nms).  The arithmetic is
 * float throughout, with NumPy's NaN rules for min and max, so that a box
 * keeps or loses out exactly as in float32 NumPy.
 *
 * Each image's boxes are suppressed on their own, stored by field in
 * visiting order, so that testing one kept box against all later ones is a
 * branch-free loop the compiler vectorises; the kept boxes of all images are
 * then put in visiting order. */
#include <math.h>
#include <stdlib.h>
#include "../internal.h"

typedef struct {
    float score;
    int64_t image, index;
} ranked;

/* Descending score, NaN last, then ascending position: the visiting order
 * within an image. */
static int by_score(const ranked *a, const ranked *b)
{
    const int an = isnan(a->score), bn = isnan(b->score);
    if (an != bn)
        return an - bn;
    if (!an && a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

/* The visiting order over all images: equal scores by ascending image.  A
 * total order, so qsort's instability cannot show. */
static int by_rank(const void *p, const void *q)
{
    const ranked *a = p, *b = q;
    const int an = isnan(a->score), bn = isnan(b->score);
    if (an == bn && (an || a->score == b->score) && a->image != b->image)
        return a->image < b->image ? -1 : 1;
    return by_score(a, b);
}

/* Images apart, each in visiting order. */
static int by_image(const void *p, const void *q)
{
    const ranked *a = p, *b = q;
    if (a->image != b->image)
        return a->image < b->image ? -1 : 1;
    return by_score(a, b);
}

/* np.minimum / np.maximum: NaN if either is (bitwise |, so no branch). */
static inline float nan_min(float a, float b) { return ((a < b) | (a != a)) ? a : b; }
static inline float nan_max(float a, float b) { return ((a > b) | (a != a)) ? a : b; }

/* Greedy NMS of one image's m boxes, given by field in visiting order
 * (box[f * m + r], f: x1, y1, x2, y2, area).  Marks the boxes it drops in
 * dead (m entries, zero on entry); kept boxes stay 0.  by_min is a constant
 * in each call (always inlined), so the inner loop compiles branch-free. */
static inline __attribute__((always_inline)) void
nms_image(int64_t m, const float *box, float threshold, int by_min, int32_t *restrict dead)
{
    const float one = by_min ? 1.0f : 0.0f;
    const float *x1 = box, *y1 = box + m, *x2 = box + 2 * m, *y2 = box + 3 * m;
    const float *area = box + 4 * m;
    for (int64_t i = 0; i < m; i++) {
        if (dead[i])
            continue;
        const float ax1 = x1[i], ay1 = y1[i], ax2 = x2[i], ay2 = y2[i], aa = area[i];
        for (int64_t j = i + 1; j < m; j++) {
            const float w = nan_max(nan_min(ax2, x2[j]) - nan_max(ax1, x1[j]) + one, 0.0f);
            const float h = nan_max(nan_min(ay2, y2[j]) - nan_max(ay1, y1[j]) + one, 0.0f);
            const float inter = w * h;
            if (by_min)
                dead[j] |= !(inter / nan_min(aa, area[j]) <= threshold);
            else
                dead[j] |= inter / (aa + area[j] - inter) > threshold;
        }
    }
}

int fc_nms(int64_t n, const float *boxes, const float *scores, const int64_t *image,
           float threshold, int mode, int64_t *keep, int64_t *kept)
{
    if (n < 0 || !kept || (mode != FC_NMS_IOU && mode != FC_NMS_MIN))
        return FC_EINVAL;
    *kept = 0;
    if (n == 0)
        return FC_OK;
    ranked *order = fc_alloc((size_t)n * sizeof *order);
    float *box = fc_alloc((size_t)n * 5 * sizeof *box);
    int32_t *dead = fc_alloc((size_t)n * sizeof *dead);
    if (!order || !box || !dead) {
        fc_free(order), fc_free(box), fc_free(dead);
        return FC_ENOMEM;
    }
    for (int64_t i = 0; i < n; i++)
        order[i] = (ranked){scores[i], image ? image[i] : 0, i};
    qsort(order, (size_t)n, sizeof *order, by_image);
    const float one = mode == FC_NMS_MIN ? 1.0f : 0.0f;
    int64_t count = 0;
    for (int64_t first = 0, last; first < n; first = last) {
        for (last = first + 1; last < n && order[last].image == order[first].image; last++)
            ;
        const int64_t m = last - first;
        for (int64_t r = 0; r < m; r++) {
            const float *b = boxes + order[first + r].index * 4;
            box[r] = b[0], box[m + r] = b[1], box[2 * m + r] = b[2], box[3 * m + r] = b[3];
            box[4 * m + r] = (b[2] - b[0] + one) * (b[3] - b[1] + one);
            dead[r] = 0;
        }
        if (mode == FC_NMS_MIN)
            nms_image(m, box, threshold, 1, dead);
        else
            nms_image(m, box, threshold, 0, dead);
        for (int64_t r = 0; r < m; r++)
            if (!dead[r])
                order[count++] = order[first + r]; /* count <= first + r: no overwrite */
    }
    qsort(order, (size_t)count, sizeof *order, by_rank);
    for (int64_t i = 0; i < count; i++)
        keep[i] = order[i].index;
    *kept = count;
    fc_free(order), fc_free(box), fc_free(dead);
    return FC_OK;
}
