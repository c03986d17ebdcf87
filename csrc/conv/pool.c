/* Pooling entry points (fastconv.h): the planes of N x C split over the
 * threads, each plane pooled by the active ISA's kernel (pool.inc). */
#include <omp.h>
#include "../internal.h"

/* Elements of scratch per thread for the kernels' short-row path (a padded
 * copy of the plane and its accumulator, pool.inc), or 0 where the rows are
 * long enough for the row kernel, the strides differ, the map is pooled
 * whole, the plane is large, or the rows-then-columns max kernel runs at
 * stride 2 (at stride 1 the short-row path is faster on short rows). */
static int64_t pool_flat_elems(const fc_pool_args *a)
{
    if (a->stride_h != a->stride_w || a->ow >= 64)
        return 0;
    if (fc_pool_rows_fits(a) && a->stride_w == 2)
        return 0;
    if (fc_pool_is_global(a))
        return 0;
    const int64_t s = a->stride_w;
    const int64_t pw = (a->ow - 1) * s + a->dil_w * (a->kw - 1) + 1;
    const int64_t ph = (a->oh - 1) * s + a->dil_h * (a->kh - 1) + 1;
    const int64_t elems = ph * pw + (a->oh - 1) * pw + a->ow;
    return elems <= (1 << 16) ? elems : 0;
}

/* Vectors of scratch for the across-planes kernel (pool.inc's planes_across:
 * the padded input, the outputs and a row of column maxima, a vector per
 * pixel), or 0 where it does
 * not run: planes not contiguous, shorter than a vector, wide enough for
 * the row kernels (which are as fast there), or too large for L2, and the
 * global pools (their own reduction). */
static int64_t pool_across_elems(const fc_pool_args *a, int lanes)
{
    if (a->xs_w != 1 || a->xs_h != a->w || a->h * a->w < lanes || a->w >= 64)
        return 0;
    if (fc_pool_is_global(a))
        return 0;
    const int64_t hp = fc_pool_padded_extent(a->oh, a->stride_h, a->kh, a->dil_h);
    const int64_t wp = fc_pool_padded_extent(a->ow, a->stride_w, a->kw, a->dil_w);
    return hp * wp <= 4096 ? hp * wp + a->oh * a->ow + wp : 0;
}

static int pool_across(const fc_pool_args *a, const fc_pool_kernels *kern, int64_t elsize,
                       int64_t per_group, int nt)
{
    const int lanes = kern->lanes;
    assert(lanes <= FC_POOL_MAX_LANES);
    const int64_t planes = a->n * a->c, groups = (planes + lanes - 1) / lanes;
    const int64_t out = a->oh * a->ow;
    const size_t ws_bytes = (size_t)(per_group * lanes * elsize);
    char *ws = fc_alloc((size_t)nt * ws_bytes);
    if (!ws)
        return FC_ENOMEM;
    if (nt > groups)
        nt = (int)groups;
    fc_place place;
    fc_place_init(&place, nt);
    #pragma omp parallel num_threads(nt)
    {
        fc_place_self(&place);
        void *mine = ws + omp_get_thread_num() * ws_bytes;
        #pragma omp for schedule(static)
        for (int64_t g = 0; g < groups; g++) {
            const void *x[FC_POOL_MAX_LANES];
            void *y[FC_POOL_MAX_LANES];
            const int64_t first = g * lanes;
            const int count = planes - first < lanes ? (int)(planes - first) : lanes;
            for (int l = 0; l < count; l++) {
                const int64_t pl = first + l, n = pl / a->c, c = pl % a->c;
                x[l] = (const char *)a->x + (n * a->xs_n + c * a->xs_c) * elsize;
                y[l] = (char *)a->y + pl * out * elsize;
            }
            kern->planes(a, x, y, count, mine);
        }
    }
    fc_free(ws);
    return FC_OK;
}

static int pool_run(const fc_pool_args *a, const fc_pool_kernels *kern, int64_t elsize)
{
    if (!a)
        return FC_EINVAL;
    assert(a->kh > 0 && a->kw > 0 && a->stride_h > 0 && a->stride_w > 0);
    assert(a->dil_h > 0 && a->dil_w > 0);
    if (a->n == 0 || a->c == 0 || a->oh <= 0 || a->ow <= 0)
        return FC_OK;
    const int64_t planes = a->n * a->c, out = a->oh * a->ow;
    /* Fork only for ~100k taps or more per thread (counted in double: the
     * product of huge windows and outputs need not fit in int64). */
    const double useful = (double)planes * (double)out * (double)a->kh * (double)a->kw /
                          (1 << 17) + 1;
    const int nt = useful < fc_threads() ? (int)useful : fc_threads();
    const int64_t across = pool_across_elems(a, kern->lanes);
    if (across && pool_across(a, kern, elsize, across, nt) == FC_OK)
        return FC_OK;   /* out of memory: the per-plane kernels below need less */
    /* The short-row path's scratch; without it (out of memory) the row kernel runs. */
    const int64_t flat = pool_flat_elems(a);
    char *ws = flat ? fc_alloc((size_t)(nt * flat * elsize)) : NULL;
    fc_place place;
    fc_place_init(&place, nt);
    #pragma omp parallel num_threads(nt)
    {
        fc_place_self(&place);
        void *mine = ws ? ws + omp_get_thread_num() * flat * elsize : NULL;
        #pragma omp for schedule(static)
        for (int64_t pl = 0; pl < planes; pl++) {
            const int64_t n = pl / a->c, c = pl % a->c;
            kern->plane(a, (const char *)a->x + (n * a->xs_n + c * a->xs_c) * elsize,
                        (char *)a->y + pl * out * elsize, mine);
        }
    }
    fc_free(ws);
    return FC_OK;
}

int fc_spool2d(const fc_pool_args *a) { return pool_run(a, fc_kernels()->spool, sizeof(float)); }
int fc_dpool2d(const fc_pool_args *a) { return pool_run(a, fc_kernels()->dpool, sizeof(double)); }
