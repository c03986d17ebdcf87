/* Area resampling of image crops (fastconv.h: fc_area_resample).
 *
 * Separable: one work item is one output row of one crop.  Its source rows
 * are summed into a per-thread row of crop-width sums (vectorised widening
 * adds), then each output column sums its window of that row.  The window sums are exact for uint8 pixels, so the one division
 * gives the correctly rounded mean, as a double, before the float rounding. */
#include <omp.h>
#include "../internal.h"

/* Source window [lo, hi) of output i of `size` outputs over `len` inputs. */
static inline int64_t window_lo(int64_t i, int64_t len, int64_t size) { return i * len / size; }
static inline int64_t window_hi(int64_t i, int64_t len, int64_t size)
{
    return ((i + 1) * len + size - 1) / size;
}

/* acc[t] = sum of rows [0, rows) of src (rows `stride` apart) at t < len,
 * for uint8 pixels into uint16 (rows <= 257) or int32 sums, and for double
 * pixels.  uint16 sums halve the vector work of the widening adds. */
#define SUM_ROWS(name, PIXEL, ACC)                                                   \
    static void name(const PIXEL *src, int64_t stride, int64_t rows, int64_t len,    \
                     ACC *restrict acc)                                              \
    {                                                                                \
        for (int64_t t = 0; t < len; t++)                                            \
            acc[t] = src[t];                                                         \
        for (int64_t r = 1; r < rows; r++) {                                         \
            const PIXEL *row = src + r * stride;                                     \
            for (int64_t t = 0; t < len; t++)                                        \
                acc[t] += row[t];                                                    \
        }                                                                            \
    }
SUM_ROWS(sum_rows_u16, uint8_t, uint16_t)
SUM_ROWS(sum_rows_i32, uint8_t, int32_t)
SUM_ROWS(sum_rows_f64, double, double)

/* prefix[x * c + ch] = sum of acc's first x pixels in channel ch, x <= cw
 * (c = 3: the running sums kept in registers, not reloaded from prefix). */
#define RUNNING_SUMS(name, ACC)                                                      \
    static void name(const ACC *acc, int64_t c, int64_t cw, int64_t *restrict prefix) \
    {                                                                                \
        if (c == 3) {                                                                \
            int64_t s0 = 0, s1 = 0, s2 = 0;                                          \
            prefix[0] = prefix[1] = prefix[2] = 0;                                   \
            for (int64_t x = 0; x < cw; x++) {                                       \
                prefix[3 * x + 3] = s0 += acc[3 * x];                                \
                prefix[3 * x + 4] = s1 += acc[3 * x + 1];                            \
                prefix[3 * x + 5] = s2 += acc[3 * x + 2];                            \
            }                                                                        \
            return;                                                                  \
        }                                                                            \
        for (int64_t ch = 0; ch < c; ch++)                                           \
            prefix[ch] = 0;                                                          \
        for (int64_t t = 0; t < cw * c; t++)                                         \
            prefix[t + c] = prefix[t] + acc[t];                                      \
    }
RUNNING_SUMS(running_sums_u16, uint16_t)
RUNNING_SUMS(running_sums_i32, int32_t)

/* out[ch * ow + j] = the sum of pixels [lo[j], hi[j]) in channel ch, as the
 * difference of two running sums: two loads per output, whatever the
 * window.  The c = 3 call gets its own inlined copy (constant stride). */
static inline __attribute__((always_inline)) void
window_sums(const int64_t *prefix, int64_t c, int64_t ow, const int64_t *lo, const int64_t *hi,
            double *restrict out)
{
    for (int64_t j = 0; j < ow; j++)
        for (int64_t ch = 0; ch < c; ch++)
            out[ch * ow + j] = (double)(prefix[hi[j] * c + ch] - prefix[lo[j] * c + ch]);
}

/* The same for double pixels, each window summed directly (a difference of
 * running sums of doubles would lose the small windows to cancellation). */
static inline __attribute__((always_inline)) void
sum_columns_f64(const double *acc, int64_t c, int64_t ow, const int64_t *lo,
                const int64_t *hi, double *restrict out)
{
    for (int64_t j = 0; j < ow; j++)
        for (int64_t ch = 0; ch < c; ch++) {
            double s = 0;
            for (int64_t x = lo[j]; x < hi[j]; x++)
                s += acc[x * c + ch];
            out[ch * ow + j] = s;
        }
}

/* Per-thread scratch: the row sums and their running sums (uint8), the
 * window sums, and the current crop's column windows (relative to its x0)
 * with their widths. */
typedef struct {
    void *acc;
    int64_t *prefix;
    double *sums, *width;
    int64_t *lo, *hi;
    int64_t crop; /* whose column windows lo, hi, width hold; -1: none */
} scratch;

static void resample_row(const fc_area_args *a, int64_t k, int64_t i, scratch *s)
{
    const int64_t c = a->c, ow = a->ow;
    const int64_t x0 = a->x0[k], cw = a->x1[k] - x0, ch_len = a->y1[k] - a->y0[k];
    if (s->crop != k) {
        for (int64_t j = 0; j < ow; j++) {
            s->lo[j] = window_lo(j, cw, ow);
            s->hi[j] = window_hi(j, cw, ow);
            s->width[j] = (double)(s->hi[j] - s->lo[j]);
        }
        s->crop = k;
    }
    const int64_t ly = window_lo(i, ch_len, a->oh), hy = window_hi(i, ch_len, a->oh);
    const int64_t first = ((a->index[k] * a->h + a->y0[k] + ly) * a->w + x0) * c;
    if (a->pixel == FC_PIXEL_U8) {
        const uint8_t *src = (const uint8_t *)a->images + first;
        if (hy - ly <= 65535 / 255) {
            sum_rows_u16(src, a->w * c, hy - ly, cw * c, s->acc);
            running_sums_u16(s->acc, c, cw, s->prefix);
        } else {
            sum_rows_i32(src, a->w * c, hy - ly, cw * c, s->acc);
            running_sums_i32(s->acc, c, cw, s->prefix);
        }
        if (c == 3)
            window_sums(s->prefix, 3, ow, s->lo, s->hi, s->sums);
        else
            window_sums(s->prefix, c, ow, s->lo, s->hi, s->sums);
    } else {
        sum_rows_f64((const double *)a->images + first, a->w * c, hy - ly, cw * c, s->acc);
        if (c == 3)
            sum_columns_f64(s->acc, 3, ow, s->lo, s->hi, s->sums);
        else
            sum_columns_f64(s->acc, c, ow, s->lo, s->hi, s->sums);
    }
    const double rows = (double)(hy - ly);
    for (int64_t ch = 0; ch < c; ch++) {
        const double *sum = s->sums + ch * ow;
        float *y = a->y + ((k * c + ch) * a->oh + i) * ow;
        for (int64_t j = 0; j < ow; j++)
            y[j] = ((float)(sum[j] / (rows * s->width[j])) - a->offset) * a->scale;
    }
}

static int64_t round64(int64_t bytes) { return (bytes + 63) & ~(int64_t)63; }

int fc_area_resample(const fc_area_args *a)
{
    if (!a || (a->pixel != FC_PIXEL_U8 && a->pixel != FC_PIXEL_F64))
        return FC_EINVAL;
    assert(a->c > 0 && a->oh > 0 && a->ow > 0);
    if (a->crops == 0)
        return FC_OK;
    int64_t widest = 0;
    double pixels = 0; /* source pixels read, about: the work */
    for (int64_t k = 0; k < a->crops; k++) {
        assert(a->index[k] >= 0 && a->index[k] < a->n);
        assert(0 <= a->y0[k] && a->y0[k] < a->y1[k] && a->y1[k] <= a->h);
        assert(0 <= a->x0[k] && a->x0[k] < a->x1[k] && a->x1[k] <= a->w);
        const int64_t cw = a->x1[k] - a->x0[k], rows = a->y1[k] - a->y0[k];
        widest = cw > widest ? cw : widest;
        pixels += (double)cw * (double)(rows > a->oh ? rows : 2 * a->oh);
    }
    const int64_t items = a->crops * a->oh;
    /* Fork only for ~64k pixels or more per thread. */
    const double useful = pixels * (double)a->c / (1 << 16) + 1;
    int nt = useful < fc_threads() ? (int)useful : fc_threads();
    nt = items < nt ? (int)items : nt;
    const int64_t acc_bytes = round64(widest * a->c * 8), sums_bytes = round64(a->c * a->ow * 8);
    const int64_t col_bytes = round64(a->ow * 8);
    const int64_t prefix_bytes = round64((widest + 1) * a->c * 8);
    const int64_t per_thread = acc_bytes + prefix_bytes + sums_bytes + 3 * col_bytes;
    char *ws = fc_alloc((size_t)(nt * per_thread));
    if (!ws)
        return FC_ENOMEM;
    fc_place place;
    fc_place_init(&place, nt);
    #pragma omp parallel num_threads(nt)
    {
        fc_place_self(&place);
        char *mine = ws + omp_get_thread_num() * per_thread;
        char *cols = mine + acc_bytes + prefix_bytes + sums_bytes;
        scratch s = {.acc = mine,
                     .prefix = (int64_t *)(mine + acc_bytes),
                     .sums = (double *)(mine + acc_bytes + prefix_bytes),
                     .width = (double *)cols,
                     .lo = (int64_t *)(cols + col_bytes),
                     .hi = (int64_t *)(cols + 2 * col_bytes),
                     .crop = -1};
        #pragma omp for schedule(static)
        for (int64_t item = 0; item < items; item++)
            resample_row(a, item / a->oh, item % a->oh, &s);
    }
    fc_free(ws);
    return FC_OK;
}
