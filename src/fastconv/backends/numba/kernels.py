"""Numba kernels, first correct version: plain loops, parallel over output
rows or channels.  Same contract as every backend (see fastconv.backends).

Each kernel takes `zero`, a scalar of the array dtype, so accumulators have
the array's precision (float32 stays float32, as in the C backend)."""
import numba
import numpy as np

_jit = dict(nogil=True, cache=True, parallel=True)


@numba.njit(**_jit)
def _gemm(a, b, out, bias, has_bias, bias_axis, relu, zero):
    m, k = a.shape
    n = b.shape[1]
    for i in numba.prange(m):
        for j in range(n):
            acc = zero
            for p in range(k):
                acc += a[i, p] * b[p, j]
            if has_bias:
                acc += bias[i] if bias_axis == 0 else bias[j]
            if relu and acc < 0:
                acc = zero
            out[i, j] = acc


@numba.njit(**_jit)
def _conv_direct(x, w, bias, has_bias, y, stride, pad, dil, groups, relu, zero):
    # x is (N, C, H, W) and y is (N, K, OH, OW) in logical order (any strides).
    n_, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    oh, ow = y.shape[2], y.shape[3]
    kg = k // groups
    for nko in numba.prange(n_ * k):
        n = nko // k
        ko = nko % k
        g = ko // kg
        for oy in range(oh):
            for ox in range(ow):
                acc = zero
                for ci in range(cg):
                    for i in range(kh):
                        iy = oy * stride[0] - pad[0] + i * dil[0]
                        if iy < 0 or iy >= h:
                            continue
                        for j in range(kw):
                            ix = ox * stride[1] - pad[1] + j * dil[1]
                            if ix < 0 or ix >= wd:
                                continue
                            acc += x[n, g * cg + ci, iy, ix] * w[ko, ci, i, j]
                if has_bias:
                    acc += bias[ko]
                if relu and acc < 0:
                    acc = zero
                y[n, ko, oy, ox] = acc


@numba.njit(**_jit)
def _im2col_tile(xg, r0, rows, kh, kw, ow, stride, pad, dil, col, zero):
    # col[(ci, i, j), (r, ox)] for output rows r0 .. r0+rows-1 of one image and group.
    cg, h, wd = xg.shape
    p_ = rows * ow
    for q in numba.prange(cg * kh * kw):
        ci = q // (kh * kw)
        i = (q // kw) % kh
        j = q % kw
        for r in range(rows):
            iy = (r0 + r) * stride[0] - pad[0] + i * dil[0]
            for ox in range(ow):
                ix = ox * stride[1] - pad[1] + j * dil[1]
                v = zero
                if 0 <= iy < h and 0 <= ix < wd:
                    v = xg[ci, iy, ix]
                col[q * p_ + r * ow + ox] = v


def _use_threads():
    """Honour fastconv.set_num_threads (numba's setting is per calling thread)."""
    from ...config import get_num_threads
    numba.set_num_threads(max(1, min(get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def gemm(a, b, out, bias=None, bias_axis=1, relu=False):
    _use_threads()
    zero = a.dtype.type(0)
    has_bias = bias is not None
    _gemm(a, b, out, bias if has_bias else np.empty(0, a.dtype), has_bias, bias_axis, relu, zero)


def conv2d(x, weight, bias, p, algorithm, out, workspace_bytes, relu=False):
    _use_threads()
    zero = x.dtype.type(0)
    has_bias = bias is not None
    b = bias if has_bias else np.empty(0, x.dtype)
    xl = x if p.layout == "NCHW" else x.transpose(0, 3, 1, 2)
    yl = out if p.layout == "NCHW" else out.transpose(0, 3, 1, 2)
    pad = (p.padding[0], p.padding[2])
    if algorithm == "direct":
        _conv_direct(xl, weight, b, has_bias, yl, p.stride, pad, p.dilation, p.groups, relu, zero)
        return
    cg, kg = p.c // p.groups, p.k // p.groups
    kdim = cg * p.kh * p.kw
    tile_rows = workspace_bytes // (kdim * p.ow * x.itemsize)
    col = np.empty(tile_rows * p.ow * kdim, x.dtype)
    for n in range(p.n):
        for g in range(p.groups):
            xg = xl[n, g * cg:(g + 1) * cg]
            wg = weight[g * kg:(g + 1) * kg].reshape(kg, kdim)
            bg = None if bias is None else bias[g * kg:(g + 1) * kg]
            for r0 in range(0, p.oh, tile_rows):
                rows = min(tile_rows, p.oh - r0)
                cols = col[:kdim * rows * p.ow].reshape(kdim, rows * p.ow)
                _im2col_tile(xg, r0, rows, p.kh, p.kw, p.ow, p.stride, pad, p.dilation, col, zero)
                yt = yl[n, g * kg:(g + 1) * kg, r0:r0 + rows].reshape(kg, rows * p.ow) \
                    if p.layout == "NCHW" else None
                if yt is not None:   # Y_g[kg, P] = W_g @ col, written in place
                    gemm(wg, cols, yt, bg, 0, relu)
                else:                # NHWC: Y_g[P, kg] = col^T @ W_g^T
                    ys = out[n, r0:r0 + rows, :, g * kg:(g + 1) * kg].reshape(rows * p.ow, kg)
                    gemm(cols.T, wg.T, ys, bg, 1, relu)
