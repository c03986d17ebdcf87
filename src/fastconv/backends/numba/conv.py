"""Convolution: im2col fused into the GEMM's packing, and direct convolution.

im2col: per image and group, whole output rows at a time (as many as the
caller's workspace_bytes allow), the conv is the GEMM of fastconv.lower.group_gemm,
and the patch matrix is never written out: the GEMM packs its panels
straight from the image (gemm._pack_patches), so the only workspace is the
GEMM's packing buffer.

direct: no patch matrix at all.  The input is copied once into a
zero-padded NCHW array, so no inner loop has bounds checks.  Two kernels:
  - register tiles (gemm.conv_tiles): MR output pixels of a row by NR
    output channels, the GEMM's micro-kernel run once per kernel tap over
    the input channels, reading the pixels in place against weights packed
    per tap (packed by each thread for its own blocks of channels).
  - depthwise convolutions (one input channel per group, so a tile would
    have a depth of one): each task is a few output rows of one output
    channel, accumulated in place (it stays in L1) while the loop over taps
    runs, the innermost loop along output pixels, which LLVM vectorises.
"""
import numba
import numba.extending
import numpy as np

from ... import lower
from . import _runtime, gemm as _gemm


def _patches(x, n, g, cg, p, r0):
    """Image n, group g of x as the GEMM operand of its patch matrix,
    starting at output row r0."""
    span, off, strides = _runtime.flat(x)
    if p.layout == "NCHW":
        sn, sc, sh, sw = strides
    else:
        sn, sh, sw, sc = strides
    patches = _gemm.Patches(ow=p.ow, r0=r0, sh=p.stride[0], sw=p.stride[1], dh=p.dilation[0],
                            dw=p.dilation[1], pad_top=p.padding[0], pad_left=p.padding[2],
                            kh=p.kh, kw=p.kw, h=p.h, w=p.w, xs_c=sc, xs_h=sh, xs_w=sw)
    return span, off + n * sn + g * cg * sc, 0, 0, patches


def _im2col(x, weight, bias, p, out, workspace_bytes, relu):
    cg, kg = p.c // p.groups, p.k // p.groups
    kdim = cg * p.kh * p.kw
    tile_rows = max(1, min(p.oh, workspace_bytes // lower.im2col_row_bytes(p, x.itemsize)))
    for n in range(p.n):
        for g in range(p.groups):
            wg = weight[g * kg:(g + 1) * kg].reshape(kg, kdim)
            bg = None if bias is None else bias[g * kg:(g + 1) * kg]
            for r0 in range(0, p.oh, tile_rows):
                rows = min(tile_rows, p.oh - r0)
                pixels = rows * p.ow
                if p.layout == "NCHW":
                    y = out[n, g * kg:(g + 1) * kg, r0:r0 + rows].reshape(kg, pixels)
                else:
                    y = out[n, r0:r0 + rows, :, g * kg:(g + 1) * kg].reshape(pixels, kg)
                a, b, bias_axis = lower.group_gemm(p.layout, wg, _patches(x, n, g, cg, p, r0))
                _gemm.run(a, b, *y.shape, kdim, y, bg, bias_axis, relu)


@numba.extending.register_jitable
def direct_rows(oh, ow):
    """Output rows per task of _direct: about 256 output pixels (in L1)."""
    return max(1, min(oh, 256 // ow))


@numba.njit(**_runtime.PARALLEL_JIT)
def _direct(xp, w, bias, has_bias, relu, y, n_, c, hp, wp, k, kh, kw, oh, ow,
            sh, sw, dh, dw, groups, rows, zero):
    """xp: zero-padded input (N, C, Hp, Wp); w: (K, C/groups, kh, kw);
    y: output (N, K, OH, OW); all flat and contiguous.  A task is `rows`
    output rows of one output channel; each row is accumulated in place in
    y (it stays in L1) starting from the bias.  zero: 0 in the dtype."""
    cg = c // groups
    kg = k // groups
    row_blocks = (oh + rows - 1) // rows
    for task in numba.prange(n_ * k * row_blocks):
        rb = task % row_blocks
        ko = (task // row_blocks) % k
        n = task // (row_blocks * k)
        g = ko // kg
        b = bias[ko] if has_bias else zero
        for oy in range(rb * rows, min((rb + 1) * rows, oh)):
            at = ((n * k + ko) * oh + oy) * ow
            yrow = y[at:at + ow]  # row views vectorise (see _runtime)
            for ox in range(ow):
                yrow[ox] = b
            for ci in range(cg):
                plane = (n * c + g * cg + ci) * hp * wp
                for i in range(kh):
                    row = plane + (oy * sh + i * dh) * wp
                    for j in range(kw):
                        wv = w[((ko * cg + ci) * kh + i) * kw + j]
                        xrow = xp[row + j * dw:]
                        if sw == 1:
                            for ox in range(ow):
                                yrow[ox] += wv * xrow[ox]
                        else:
                            for ox in range(ow):
                                yrow[ox] += wv * xrow[ox * sw]
            if relu:
                for ox in range(ow):
                    v = yrow[ox]
                    yrow[ox] = zero if v < zero else v


def _direct_conv(x, weight, bias, p, out, relu):
    top, _, left, _ = p.padding
    hp, wp = p.padded_hw
    xp = np.zeros((p.n, p.c, hp, wp), x.dtype)
    xp[:, :, top:top + p.h, left:left + p.w] = x if p.layout == "NCHW" else x.transpose(0, 3, 1, 2)
    y = out if p.layout == "NCHW" else np.empty((p.n, p.k, p.oh, p.ow), x.dtype)
    _runtime.use_threads()
    _runtime.launch(_direct, xp.reshape(-1), np.ascontiguousarray(weight).reshape(-1),
                    _runtime.vector(bias, x.dtype), bias is not None, bool(relu), y.reshape(-1),
                    p.n, p.c, hp, wp, p.k, p.kh, p.kw, p.oh, p.ow, p.stride[0], p.stride[1],
                    p.dilation[0], p.dilation[1], p.groups,
                    direct_rows(p.oh, p.ow), x.dtype.type(0))
    if y is not out:
        out[...] = y.transpose(0, 2, 3, 1)


def _tiled_direct_conv(x, weight, bias, p, out, relu):
    """Direct convolution on the GEMM micro-kernel's register tiles
    (gemm.conv_tiles), written straight into out in either layout."""
    top, _, left, _ = p.padding
    hp, wp = p.padded_hw
    mr, _ = _gemm.conv_tile(x.itemsize)
    # Padded rows of all channels one after another (N, Hp, C, Wp): a tile's
    # reads over the channels stay within a few pages.  Partial tiles read
    # up to MR pixels past a row's end: the slack keeps the last row's reads
    # inside the buffer (their results are dropped).
    xp = np.zeros(p.n * hp * p.c * wp + mr * p.stride[1], x.dtype)
    xp4 = xp[:p.n * hp * p.c * wp].reshape(p.n, hp, p.c, wp)
    xp4[:, top:top + p.h, :, left:left + p.w] = \
        x.transpose(0, 2, 1, 3) if p.layout == "NCHW" else x.transpose(0, 1, 3, 2)
    nthreads = _runtime.use_threads()
    _runtime.launch(_gemm.conv_tiles, xp, p.c, hp, wp, np.ascontiguousarray(weight).reshape(-1),
                    out.reshape(-1), p.layout == "NCHW", p.n, p.k, p.oh, p.ow,
                    p.stride[0], p.stride[1], p.dilation[0], p.dilation[1], p.kh, p.kw,
                    p.groups, _runtime.vector(bias, x.dtype), bias is not None, bool(relu),
                    nthreads)


def conv2d(x, weight, bias, p, algorithm, out, workspace_bytes, relu=False):
    """See fastconv.backends: algorithm "direct" or "im2col"; out is
    C-contiguous of shape p.out_shape."""
    if p.n == 0:
        return
    # The register tiles read up to MR pixels past a row at stride sw: with a
    # stride that makes that slack larger than a padded plane, per-row kernels.
    wide_stride = _gemm.conv_tile(x.itemsize)[0] * p.stride[1] > p.padded_hw[0] * p.padded_hw[1]
    if algorithm == "direct" and (p.is_depthwise or wide_stride):
        _direct_conv(x, weight, bias, p, out, relu)  # per-channel output rows
    elif algorithm == "direct":
        _tiled_direct_conv(x, weight, bias, p, out, relu)
    else:
        _im2col(x, weight, bias, p, out, workspace_bytes, relu)
