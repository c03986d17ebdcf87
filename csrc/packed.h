/* What an fc_packed holds (fastconv.h): one layer's constant operand in the
 * layout one ISA's kernels read, with the shapes it was packed for. */
#ifndef FASTCONV_PACKED_H
#define FASTCONV_PACKED_H

#include "internal.h"

/* FC_PACKED_IM2COL: data is an array of `groups` GEMM packs, one per group.
 * FC_PACKED_WINOGRAD: an array of FC_WINOGRAD_PACKS GEMM packs (A), one per
 * transformed tap xi (NULL when C or K is 0, or past F(2x2)'s 16;
 * conv/winograd.inc); kb is the output tile (4 or 2). */
enum { FC_PACKED_CONV = 1, FC_PACKED_DEPTHWISE, FC_PACKED_GEMM_A, FC_PACKED_GEMM_B,
       FC_PACKED_IM2COL, FC_PACKED_WINOGRAD };
enum { FC_WINOGRAD_PACKS = 36 };

struct fc_packed {
    int kind;           /* FC_PACKED_* */
    int elsize;         /* sizeof(float) or sizeof(double) */
    const void *kern;   /* the kernel-table entry it was packed for (identifies the ISA) */
    /* conv: the weight's geometry.  GEMM: rows x cols of the packed operand. */
    int64_t c, k, kh, kw, groups;
    int64_t rows, cols;
    /* conv: output channels per block (kb), elements per block (weights, then
     * kb bias entries), depthwise padded channels (cp).  GEMM: rows or columns
     * per micro-panel (MR or NR), KC. */
    int64_t kb, block, cp, kc;
    int has_bias;
    int layout;         /* im2col: FC_NCHW (weights as A) or FC_NHWC (as B) */
    int64_t bytes;
    void *data;
};

/* A zeroed fc_packed owning `bytes` of 64-byte aligned data; NULL if out of memory. */
fc_packed *fc_packed_new(int64_t bytes);

#endif
