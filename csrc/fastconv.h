/*
 * fastconv C ABI.
 *
 * The block between the CDEF markers is handed verbatim to cffi's cdef(), so it
 * holds plain declarations only (no macros, no #include).  The Python layer
 * validates every argument before calling in; the C side re-checks its
 * preconditions with assert() in debug builds (FASTCONV_DEBUG=1).
 *
 * All strides are in elements, not bytes, and may be negative or zero.
 * All counts are int64_t so that no index product can overflow.
 */
#ifndef FASTCONV_H
#define FASTCONV_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CDEF BEGIN */

/* Return codes. */
enum { FC_OK = 0, FC_ENOMEM = 1, FC_EINVAL = 2 };

/* Where a bias vector is added in a GEMM epilogue. */
enum { FC_BIAS_NONE = 0, FC_BIAS_PER_ROW = 1, FC_BIAS_PER_COL = 2 };

/* Activation layout of conv input and output. */
enum { FC_NCHW = 0, FC_NHWC = 1 };

/* C[m,n] = (accumulate ? C : 0) + sum_k A[m,k] * B[k,n]  (+ bias) (ReLU or PReLU).
 * Element (i,j) of X lives at X + i*rsX + j*csX.  The pointer type is float
 * for fc_sgemm and double for fc_dgemm.  C must not overlap A, B or bias. */
typedef struct {
    int64_t m, n, k;
    const void *a; int64_t rsa, csa;
    const void *b; int64_t rsb, csb;
    void *c;       int64_t rsc, csc;
    const void *bias;   /* m entries (PER_ROW) or n entries (PER_COL), contiguous */
    int bias_mode;      /* FC_BIAS_* */
    int relu;           /* 1: clamp the result at 0 after the bias */
    int accumulate;     /* 1: beta = 1, add into C; 0: beta = 0, C is write-only */
    const void *slope;  /* PReLU after the bias: x < 0 ? slope * x : x (relu must be 0); */
    int slope_mode;     /* m or n entries as for bias (FC_BIAS_*; NONE: no slope) */
    int clip;           /* 1 (with relu): also clamp the result at clip_max (ReLU6); NaN passes */
    double clip_max;
} fc_gemm_args;

int fc_sgemm(const fc_gemm_args *args);
int fc_dgemm(const fc_gemm_args *args);

/* 2-D convolution (cross-correlation, as in torch.nn.functional.conv2d).
 * x is read through its four element strides, given in logical N,C,H,W order
 * whatever the layout.  weight is contiguous (k, c/groups, kh, kw).  y is
 * contiguous in `layout` (N,K,OH,OW or N,OH,OW,K).  bias: k entries or NULL.
 * Padding at the bottom/right is implied by oh/ow.
 * ws/ws_bytes: caller-owned scratch for im2col.  im2col lowers
 * floor(ws_bytes / (c/groups * kh * kw * ow * elsize)) output rows at a time,
 * which must be at least 1; direct convolution ignores ws. */
typedef struct {
    int64_t n, c, h, w;
    int64_t k, kh, kw;
    int64_t oh, ow;
    int64_t stride_h, stride_w;
    int64_t pad_top, pad_left;
    int64_t dil_h, dil_w;
    int64_t groups;
    int layout;
    const void *x; int64_t xs_n, xs_c, xs_h, xs_w;
    const void *weight;
    const void *bias;
    void *y;
    int relu;
    void *ws; int64_t ws_bytes;
    const void *slope;  /* k entries or NULL: PReLU after the bias (relu must be 0) */
    int clip;           /* 1 (with relu): also clamp the result at clip_max, as fc_gemm_args */
    double clip_max;
} fc_conv_args;

int fc_sconv_direct(const fc_conv_args *args);
int fc_dconv_direct(const fc_conv_args *args);
int fc_sconv_im2col(const fc_conv_args *args);
int fc_dconv_im2col(const fc_conv_args *args);
/* Winograd F(4x4, 3x3) for kh = kw = 3, stride 1, dilation 1, groups 1
 * (FC_EINVAL otherwise); error within a few float roundings of the output's
 * magnitude, not exact like the others.  ws/ws_bytes: caller-owned scratch
 * of T = floor(ws_bytes / (36 * (c + k) * elsize)) >= 1 tiles of 4x4 output
 * pixels: on p threads with T / p at least the GEMM's NR
 * (fc_gemm_get_blocking), each thread runs blocks of T / p tiles alone, else
 * all threads share blocks of T tiles. */
int fc_sconv_winograd(const fc_conv_args *args);
int fc_dconv_winograd(const fc_conv_args *args);

/* Threads used by every parallel region of the C core.  Default: the value
 * of OMP_NUM_THREADS if set, else the number of online cores. */
void fc_set_num_threads(int n);
int fc_get_num_threads(void);
/* Threads the calling thread's later calls use instead (n <= 0: the
 * library-wide count again).  Thread-local: a binding that owns the count
 * sets it before each call. */
void fc_set_local_num_threads(int n);
/* Keep the OpenMP workers of the calling thread's team (`threads` of them in
 * all) off the caller's CPU, as every parallel region of the C core does
 * first (threads.c).  For other OpenMP code sharing the process's OpenMP
 * runtime, such as Numba's omp threading layer. */
void fc_place_workers(int threads);

/* CPU dispatch.  The table is filled once, at the first call into the
 * library, from CPUID.  fc_cpu_features() returns FC_CPU_* bits. */
enum { FC_CPU_AVX2 = 1, FC_CPU_FMA = 2, FC_CPU_AVX512F = 4 };
int fc_cpu_features(void);
const char *fc_isa_name(void);
/* Force an ISA ("generic", "avx2", "avx512") for testing; -1 if the CPU
 * lacks it or the name is unknown, 0 on success.  Not thread-safe. */
int fc_set_isa(const char *name);
/* The tile, short-kernel rows and cache blocking of the GEMM micro-kernel
 * that the active ISA runs for `elsize`-byte elements (4: fp32, 8: fp64);
 * FC_EINVAL for another size.  For tests and reports (csrc/gemm/ukernels.h). */
typedef struct { int64_t mr, nr, mr_short, mc, kc, nc, nc_small; } fc_gemm_blocking;
int fc_gemm_get_blocking(int elsize, fc_gemm_blocking *out);

/* Every allocation in the C core goes through fc_alloc (alloc.c), 64-byte
 * aligned.  For tests: make the next n allocations succeed and every later
 * one fail (n < 0: never fail, the default). */
void fc_debug_fail_allocs_after(int64_t n);

/* Measured machine limits, for benchmark reports (probe/).  Each call runs
 * for a fraction of a second on exactly `threads` threads.
 * fc_probe_fma: fp32 multiply-add throughput, GFLOP/s, of the vector unit
 * that `isa`'s kernels use ("generic", "avx2", "avx512"; NULL: the active
 * ISA); FC_EINVAL if this CPU lacks it.  fp64 peak is half of it.
 * fc_probe_read: memory read bandwidth, GB/s, streaming a `bytes`-long buffer
 * (make it much larger than the last-level cache). */
int fc_probe_fma(const char *isa, int threads, double *gflops);
int fc_probe_read(int64_t bytes, int threads, double *gbps);

/* Weights packed once.  A layer's constant operand copied, once, into the
 * layout the active ISA's kernels read, so that a call does no weight work.
 * An fc_packed is read-only after packing: concurrent calls may share it.
 *
 * fc_?conv_pack: the weight and bias of `args` (only weight, bias, c, k, kh,
 * kw and groups are read) in direct convolution's layout.
 * fc_?conv_direct_packed: fc_?conv_direct(args) with args->weight and
 * args->bias taken from `w` (ignored in args); bit-identical results.
 * fc_?conv_pack_im2col: each group's weights as im2col's GEMM operand (A for
 * FC_NCHW, B for FC_NHWC: args->layout is read too); fc_?conv_im2col_packed
 * runs fc_?conv_im2col(args) with them (args->weight must stay valid, as for
 * fc_?gemm_packed).
 * fc_?gemm_pack: GEMM operand A (side FC_PACK_A: a, m x k) or B (FC_PACK_B:
 * b, k x n) of `args` as the micro-kernel's panels, for the whole K at the
 * blocking's KC.  fc_?gemm_packed: fc_?gemm(args) reading that operand from
 * `w`; its pointer in args must still point at the operand (the matrix-vector
 * path reads it there); bit-identical results.
 * Every run returns FC_EINVAL if `w` was packed for other shapes, another
 * element type or another ISA than the active one.  NULL: out of memory. */
enum { FC_PACK_A = 0, FC_PACK_B = 1 };
typedef struct fc_packed fc_packed;
fc_packed *fc_sconv_pack(const fc_conv_args *args);
fc_packed *fc_dconv_pack(const fc_conv_args *args);
int fc_sconv_direct_packed(const fc_conv_args *args, const fc_packed *w);
int fc_dconv_direct_packed(const fc_conv_args *args, const fc_packed *w);
fc_packed *fc_sconv_pack_im2col(const fc_conv_args *args);
fc_packed *fc_dconv_pack_im2col(const fc_conv_args *args);
int fc_sconv_im2col_packed(const fc_conv_args *args, const fc_packed *w);
int fc_dconv_im2col_packed(const fc_conv_args *args, const fc_packed *w);
/* fc_?conv_pack_winograd: the 36 transformed filter matrices U = G g G^T of
 * args->weight (c, k read) as GEMM panels; fc_?conv_winograd_packed runs
 * fc_?conv_winograd(args) with them (args->bias is read, args->weight not). */
fc_packed *fc_sconv_pack_winograd(const fc_conv_args *args);
fc_packed *fc_dconv_pack_winograd(const fc_conv_args *args);
int fc_sconv_winograd_packed(const fc_conv_args *args, const fc_packed *w);
int fc_dconv_winograd_packed(const fc_conv_args *args, const fc_packed *w);
/* The same for Winograd F(2x2, 3x3): 2x2 output tiles, 16 transformed
 * filter matrices (their own pack), workspace 16 * (C + K) elements a tile. */
int fc_sconv_winograd2(const fc_conv_args *args);
int fc_dconv_winograd2(const fc_conv_args *args);
fc_packed *fc_sconv_pack_winograd2(const fc_conv_args *args);
fc_packed *fc_dconv_pack_winograd2(const fc_conv_args *args);
int fc_sconv_winograd2_packed(const fc_conv_args *args, const fc_packed *w);
int fc_dconv_winograd2_packed(const fc_conv_args *args, const fc_packed *w);
/* How Winograd F(tile x tile, 3x3) (tile 4 or 2) blocks `tiles` tiles of a
 * C -> K conv with ws_bytes of workspace on the active ISA and thread count:
 * tiles per block and threads; returns 1 if a block's GEMMs run on the
 * few-tile kernel (the transformed filters streamed once), 0 on the packed
 * GEMM, -1 on bad input. */
int fc_sconv_winograd_plan(int tile, int64_t c, int64_t k, int64_t tiles, int64_t ws_bytes,
                           int64_t *block, int *threads);
int fc_dconv_winograd_plan(int tile, int64_t c, int64_t k, int64_t tiles, int64_t ws_bytes,
                           int64_t *block, int *threads);
fc_packed *fc_sgemm_pack(const fc_gemm_args *args, int side);
fc_packed *fc_dgemm_pack(const fc_gemm_args *args, int side);
int fc_sgemm_packed(const fc_gemm_args *args, const fc_packed *w);
int fc_dgemm_packed(const fc_gemm_args *args, const fc_packed *w);
/* Bytes a pack holds; frees it (NULL is fine). */
int64_t fc_packed_bytes(const fc_packed *w);
void fc_packed_free(fc_packed *w);

/* 2-D pooling over NCHW x (read through its element strides) into a
 * contiguous (N, C, OH, OW) y, as torch's max_pool2d / avg_pool2d.  Window
 * (oy, ox) covers input rows oy*stride_h - pad_top + i*dil_h, i < kh (and
 * columns alike); taps outside the input are skipped.  The average divides
 * by the taps inside the input (FC_POOL_AVG_EXCLUDE_PAD) or by the window
 * clipped to the padded input, pad_bottom / pad_right included (FC_POOL_AVG,
 * count_include_pad); dilation must be 1 for the averages.  A window of the
 * whole map with no padding is a global pooling (one vectorised reduction
 * per plane).  A max with no tap inside the input is -inf; NaN propagates. */
enum { FC_POOL_MAX = 0, FC_POOL_AVG = 1, FC_POOL_AVG_EXCLUDE_PAD = 2 };
typedef struct {
    int64_t n, c, h, w;
    int64_t kh, kw, oh, ow;
    int64_t stride_h, stride_w;
    int64_t pad_top, pad_bottom, pad_left, pad_right;
    int64_t dil_h, dil_w;
    int mode;
    const void *x; int64_t xs_n, xs_c, xs_h, xs_w;
    void *y;
} fc_pool_args;

int fc_spool2d(const fc_pool_args *args);
int fc_dpool2d(const fc_pool_args *args);

/* Area resampling (torch's interpolate(mode="area"), i.e. adaptive average
 * pooling) of crops of a batch of images into a contiguous float32
 * (crops, c, oh, ow) y.  images: contiguous (n, h, w, c), uint8
 * (FC_PIXEL_U8) or double (FC_PIXEL_F64) pixels.  Crop k is rows
 * [y0[k], y1[k]) x columns [x0[k], x1[k]) of image index[k] (non-empty, inside
 * the image); output row i averages crop rows [floor(i L / oh), ceil((i + 1)
 * L / oh)) for crop height L, columns alike.  Sums of uint8 pixels are exact
 * (h * 255 must fit int32), so each mean is the double quotient of two
 * integers; it is rounded to float, then y = (mean - offset) * scale in
 * float.  Threads split the output rows of all crops. */
enum { FC_PIXEL_U8 = 0, FC_PIXEL_F64 = 1 };
typedef struct {
    int64_t n, h, w, c;
    int pixel;
    const void *images;
    int64_t crops;
    const int64_t *index, *y0, *y1, *x0, *x1;
    int64_t oh, ow;
    float offset, scale;
    float *y;
} fc_area_args;
int fc_area_resample(const fc_area_args *args);

/* Greedy non-maximum suppression of n boxes (x1, y1, x2, y2 rows of a
 * contiguous float (n, 4) array) with scores, within each image (image: n
 * image numbers, or NULL for one image).  Boxes are visited by descending
 * score (NaN last), ties by ascending image, then ascending position; a box
 * is kept unless a kept box of its image overlaps it by more than threshold:
 * FC_NMS_IOU intersection over union with widths x2 - x1, FC_NMS_MIN
 * intersection over the smaller box with widths x2 - x1 + 1, all in float.
 * Writes the kept positions, in visiting order, to keep (n entries) and
 * their count to *kept. */
enum { FC_NMS_IOU = 0, FC_NMS_MIN = 1 };
int fc_nms(int64_t n, const float *boxes, const float *scores, const int64_t *image,
           float threshold, int mode, int64_t *keep, int64_t *kept);

/* CDEF END */

#ifdef __cplusplus
}
#endif
#endif /* FASTCONV_H */
