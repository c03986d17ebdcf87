/* Private declarations shared by the C core's translation units. */
#ifndef FASTCONV_INTERNAL_H
#define FASTCONV_INTERNAL_H

#include <assert.h>
#include "fastconv.h"

/* ---- GEMM kernels ------------------------------------------------------
 * What a micro-kernel applies while it stores its tile of C.  bias and slope
 * point at the tile's first row (FC_BIAS_PER_ROW) or first column
 * (FC_BIAS_PER_COL). */
typedef struct {
    const void *bias;
    int bias_mode;
    int relu;
    int accumulate;
    const void *slope;
    int slope_mode;
    int clip;                   /* with relu: min(x, clip_max) too (NaN passes) */
    double clip_max;
} fc_epilogue;

/* C[0:m, 0:n] (epilogue)= A B over k steps, for m <= MR, n <= NR.
 * a: MR rows, A[i, p] at a[i*rsa + p*csa]: a packed micro-panel (rsa = 1,
 *    csa = MR) or A read in place.
 * b: NR values per step, b[p*ldb + j]: a packed micro-panel (ldb = NR) or B
 *    read in place.
 * The kernel reads all MR x NR lanes of a and b (the caller packs and
 * zero-pads partial panels) but writes only the m x n corner of C. */
typedef void (*fc_sgemm_ukernel)(int64_t k, const float *a, int64_t rsa, int64_t csa,
                                 const float *b, int64_t ldb, float *c, int64_t rsc,
                                 int64_t csc, int64_t m, int64_t n, const fc_epilogue *ep);
typedef void (*fc_dgemm_ukernel)(int64_t k, const double *a, int64_t rsa, int64_t csa,
                                 const double *b, int64_t ldb, double *c, int64_t rsc,
                                 int64_t csc, int64_t m, int64_t n, const fc_epilogue *ep);

/* GEMV rows (gemm/gemv_dot.inc): out[q] = sum_p w[q*rsw + p] x[p], q < rows <= FC_DOT_ROWS
 * (rows of W streamed at once, sharing each load of x). */
#define FC_DOT_ROWS 4
typedef void (*fc_sdot_fn)(int64_t k, const float *w, int64_t rsw, const float *x,
                           int64_t rows, float *out);
typedef void (*fc_ddot_fn)(int64_t k, const double *w, int64_t rsw, const double *x,
                           int64_t rows, double *out);
/* acc[i] = sum_p x[p*incx] w[p*csw + i], i < n (gemm/gemv_dot.inc). */
typedef void (*fc_saxpy_fn)(int64_t k, int64_t n, const float *w, int64_t csw, const float *x,
                            int64_t incx, float *acc);
typedef void (*fc_daxpy_fn)(int64_t k, int64_t n, const double *w, int64_t csw,
                            const double *x, int64_t incx, double *acc);

/* One micro-kernel with its tile and its cache blocking (gemm/ukernels.h;
 * nc_small is NC when all rows fit one MC block),
 * plus a shorter kernel (mr_short rows, same NR) for the last rows of C, so
 * that a partial panel does not cost a full one, and the GEMV kernels. */
typedef struct {
    fc_sgemm_ukernel run; int64_t mr, nr, mc, kc, nc, nc_small;
    fc_sgemm_ukernel run_short; int64_t mr_short;
    fc_sdot_fn dot;
    fc_saxpy_fn axpy;
} fc_sgemm_kernel;
typedef struct {
    fc_dgemm_ukernel run; int64_t mr, nr, mc, kc, nc, nc_small;
    fc_dgemm_ukernel run_short; int64_t mr_short;
    fc_ddot_fn dot;
    fc_daxpy_fn axpy;
} fc_dgemm_kernel;

/* fc_?gemm_packed with A from a FC_PACK_A pack `w` for any m, n (no
 * matrix-vector path: args->a is not read) and row-major C (gemm/packed.inc). */
int fc_sgemm_panels_a(const fc_gemm_args *args, const fc_packed *w);
int fc_dgemm_panels_a(const fc_gemm_args *args, const fc_packed *w);

/* Every GEMM micro-kernel (gemm/ukernels.h), its short twin, and the GEMV
 * kernels compiled for the same ISA and type. */
#include "gemm/ukernels.h"
#define FC_DECLARE_GEMM_KERNELS(x, isa, T, mr, nr, mr_short, blocking)                  \
    void fc_##x##gemm_##isa(int64_t k, const T *a, int64_t rsa, int64_t csa, const T *b, \
                            int64_t ldb, T *c, int64_t rsc, int64_t csc, int64_t m,      \
                            int64_t n, const fc_epilogue *ep);                          \
    void fc_##x##gemm_##isa##_short(int64_t k, const T *a, int64_t rsa, int64_t csa,     \
                                    const T *b, int64_t ldb, T *c, int64_t rsc,          \
                                    int64_t csc, int64_t m, int64_t n,                   \
                                    const fc_epilogue *ep);                              \
    void fc_##x##dot_##isa(int64_t k, const T *w, int64_t rsw, const T *x, int64_t rows, \
                           T *out);                                                      \
    void fc_##x##axpy_##isa(int64_t k, int64_t n, const T *w, int64_t csw, const T *x,   \
                            int64_t incx, T *acc);
FC_GEMM_UKERNELS(FC_DECLARE_GEMM_KERNELS)
#undef FC_DECLARE_GEMM_KERNELS

/* ---- conv: direct-convolution micro-kernels (csrc/conv/) ----------------
 * One tile: rw output pixels of one or two rows x one block of output channels,
 * reduced over the whole (group's) input in registers, stored once with bias
 * and ReLU.  The pointers are `float *` or `double *` by the kernel's type.
 * General conv reads a zero-padded copy of the input and packed weights
 * [cg][kh][kw][kb]; channels-last depthwise reads a padded channels-last copy
 * and weights [kh][kw][channels], both vectorised over the block's channels
 * (planar depthwise: fc_dw_plane below). */
typedef struct {
    const void *x;              /* padded input at the tile's first tap */
    int64_t x_px;               /* elements between consecutive output pixels */
    int64_t x_ci, x_i, x_j;     /* ... between input channels, kernel rows, kernel columns */
    int64_t cg, kh, kw;         /* reduction extent (cg = 1 for depthwise) */
    const void *w;              /* packed weights of the block */
    int64_t w_tap;              /* depthwise: elements between kernel taps */
    const void *bias;           /* kb entries, zero where there is no bias */
    void *y;                    /* output at the tile's first pixel and channel */
    int64_t y_px, y_k;          /* ... between output pixels, output channels */
    int64_t y_room;             /* pixels from y to its row's end (the tile may write them) */
    int64_t rw, nk;             /* pixels per row (rows * rw <= rw max), valid channels (<= kb) */
    int64_t rows;               /* general tile: 1, or 2 output rows at once (narrow outputs) */
    int64_t x_row, y_row;       /* ... elements between those two rows in x and in y */
    int relu;
    const void *slope;          /* kb entries (PReLU), or NULL */
    int clip;                   /* with relu: min(x, clip_max) too */
    double clip_max;
} fc_conv_tile;

typedef void (*fc_conv_tile_fn)(const fc_conv_tile *t);

/* Depthwise on a planar layout: one whole output plane (oh x ow, rows of ow
 * elements at y) of one channel, vectorised over output pixels.  x: the
 * plane's padded input as rows of x_rowlen elements, each row split into
 * stride_w phases (phase p holds padded columns p, p + stride_w, ...), so
 * every tap reads consecutive elements: output (oy, ox) at tap (i, j) reads
 * x[oy * x_row + i * x_i + x_tap[j] + ox].  The rows have slack for whole
 * vectors past ow.  fast3 (0, 1 or 2): a 3x3 kernel with x_i = x_rowlen and
 * x_row = fast3 * x_rowlen (stride_h 1 or 2), which loads each input row once
 * for several output rows. */
typedef struct {
    const void *x;
    int64_t x_row, x_i;
    const int64_t *x_tap;       /* kw entries */
    int64_t kh, kw, oh, ow;
    int fast3;
    const void *w;              /* kh*kw taps */
    double bias;
    void *y;
    int relu;
    int prelu;                  /* negative outputs times slope */
    double slope;
    int clip;                   /* with relu: min(x, clip_max) too */
    double clip_max;
} fc_dw_plane;

typedef void (*fc_dw_plane_fn)(const fc_dw_plane *d);

typedef struct {
    int kb, rw;                 /* general tile: output channels, max pixels */
    fc_conv_tile_fn tile;
    fc_conv_tile_fn tile_narrow; /* the same with kb / 2 channels, for few output channels */
    int dw_kb, dw_rw;           /* depthwise tile: channels, max pixels */
    fc_conv_tile_fn dw_tile;
    fc_dw_plane_fn dw_plane;    /* planar depthwise (NCHW) */
    void (*gather2)(const void *src, int64_t n, void *dst); /* dst[m] = src[2m], m < n */
    /* weights of a block in the general tile's layout, kb channels (see tile.inc) */
    void (*pack_weights)(const void *src, int64_t red, int64_t nk, int64_t kb, void *dst);
} fc_conv_kernels;

/* Winograd F(4x4, 3x3) tile transforms (conv/winograd_tf.inc), over nt tiles
 * at once, vectorised across tiles.  The pointers are `float *` or `double *`.
 * input: v[xi*vs + t] = (B^T d_t B)[xi], d_t[6i + j] = d[(6i + j)*ds + t].
 * output: o[(4i + j)*os + t] = (A^T m_t A)[4i + j] + bias (then ReLU, or
 * PReLU with `slope` if prelu; a clip at hi after the ReLU if clip),
 * m_t[xi] = m[xi*ms + t].
 * few: c[i*nt + t] = sum_p A[i][p] v[p*nt + t] for the m x k matrix A held as
 * the GEMM's A panels at a (mr rows a panel, kc columns a block: gemm/packed.inc)
 * and nt tiles, streaming each panel once for all tiles (the tile GEMMs of a
 * few-tile block, narrower than a micro-kernel's NR); 0 on success, -1 if this
 * ISA cannot (mr more than two vectors). */
typedef struct {
    void (*input)(const void *d, int64_t ds, int64_t nt, void *v, int64_t vs);
    void (*output)(const void *m, int64_t ms, int64_t nt, double bias, int relu, int prelu,
                   double slope, int clip, double hi, void *o, int64_t os);
    int (*few)(const void *a, int64_t m, int64_t k, int64_t mr, int64_t kc, const void *v,
               int64_t nt, void *c);
    /* input and output of F(2x2, 3x3): 4x4 tiles d_t and m_t, 2x2 outputs o */
    void (*input2)(const void *d, int64_t ds, int64_t nt, void *v, int64_t vs);
    void (*output2)(const void *m, int64_t ms, int64_t nt, double bias, int relu, int prelu,
                    double slope, int clip, double hi, void *o, int64_t os);
} fc_wino_kernels;
extern const fc_wino_kernels fc_swino_generic, fc_dwino_generic;
extern const fc_wino_kernels fc_swino_avx2, fc_dwino_avx2;
extern const fc_wino_kernels fc_swino_avx512, fc_dwino_avx512;

/* ---- end conv ---- */

/* ---- pooling (csrc/conv/pool*.c): one (n, c) plane of fc_pool_args at x into y;
 * ws: NULL, or per-thread scratch for the short-row path (pool.c sizes it) ---- */
typedef struct {
    void (*plane)(const fc_pool_args *a, const void *x, void *y, void *ws);
    /* `count` <= lanes contiguous planes x[l] -> y[l] at once, vectorised
     * across them; ws: the vectors pool.c sizes for it. */
    void (*planes)(const fc_pool_args *a, const void *const *x, void *const *y, int count,
                   void *ws);
    int lanes;
} fc_pool_kernels;
enum { FC_POOL_MAX_LANES = 16 };  /* float in a 64-byte vector */
/* A window of the whole map, unpadded and undilated: one reduction per plane. */
static inline int fc_pool_is_global(const fc_pool_args *a)
{
    return a->oh == 1 && a->ow == 1 && a->kh == a->h && a->kw == a->w && a->dil_h == 1 &&
           a->dil_w == 1 && a->pad_top == 0 && a->pad_left == 0;
}
/* Rows (or columns) of input that n outputs' windows span. */
static inline int64_t fc_pool_padded_extent(int64_t n, int64_t stride, int64_t k, int64_t dil)
{
    return (n - 1) * stride + (k - 1) * dil + 1;
}
/* Max pools that take the rows-then-columns kernel (pool.inc's plane_rows):
 * column stride 1 or 2, no column dilation, small windows, more than one output. */
enum { FC_POOL_ROWS_KW = 8, FC_POOL_ROWS_KH = 16, FC_POOL_ROWS_BLOCK = 128 };
static inline int fc_pool_rows_fits(const fc_pool_args *a)
{
    return a->mode == FC_POOL_MAX && (a->stride_w == 1 || a->stride_w == 2) &&
           a->dil_w == 1 && a->kw <= FC_POOL_ROWS_KW && a->kh <= FC_POOL_ROWS_KH &&
           a->oh * a->ow > 1;
}
extern const fc_pool_kernels fc_spool_generic, fc_dpool_generic;
extern const fc_pool_kernels fc_spool_avx2, fc_dpool_avx2;
extern const fc_pool_kernels fc_spool_avx512, fc_dpool_avx512;

/* The run-time kernel table, filled once from CPUID (dispatch.c). */
typedef struct {
    const char *isa;        /* "generic", "avx2", "avx512" */
    fc_sgemm_kernel sgemm;
    fc_dgemm_kernel dgemm;
    /* ---- conv entries (csrc/conv/) ---- */
    const fc_conv_kernels *sconv, *dconv;
    const fc_wino_kernels *swino, *dwino;
    /* ---- end conv entries ---- */
    const fc_pool_kernels *spool, *dpool;
} fc_kernel_table;

/* Per-ISA conv kernels (csrc/conv/conv_direct_*.c). */
extern const fc_conv_kernels fc_sconv_generic, fc_dconv_generic;
extern const fc_conv_kernels fc_sconv_avx2, fc_dconv_avx2;
extern const fc_conv_kernels fc_sconv_avx512, fc_dconv_avx512;

const fc_kernel_table *fc_kernels(void);

/* Thread count for the next parallel region (threads.c). */
int fc_threads(void);
/* Set the calling thread's own count (as fc_set_local_num_threads) and return
 * the one it had (0: the library-wide count), so a region can run library
 * calls single-threaded inside its threads and restore the count after. */
int fc_swap_local_threads(int n);

/* Where a parallel region's threads run (threads.c): the caller fills an
 * fc_place before the region, and every thread of the region calls
 * fc_place_self first, which keeps the workers off the caller's CPU. */
typedef struct {
    int master_cpu;                  /* -1: leave the threads where they are */
    unsigned long long allowed[16];  /* the caller's cpu_set_t (1024 CPUs) */
} fc_place;
void fc_place_init(fc_place *p, int threads);
void fc_place_self(const fc_place *p);

/* 64-byte aligned allocation; NULL on failure (or when a test injects one). */
void *fc_alloc(size_t bytes);
void fc_free(void *p);

#endif
