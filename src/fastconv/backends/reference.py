"""The NumPy reference oracle: float64 accumulation, written to be obviously
correct rather than fast.  Every other backend is tested against it."""
import numpy as np


def gemm(a, b, out, bias=None, bias_axis=1, relu=False):
    acc = np.asarray(a, np.float64) @ np.asarray(b, np.float64)
    if bias is not None:
        acc += bias.astype(np.float64)[:, None] if bias_axis == 0 else bias.astype(np.float64)
    if relu:
        acc = np.where(acc < 0, 0.0, acc)
    out[...] = acc


def conv2d(x, weight, bias, p, algorithm=None, out=None, workspace_bytes=0, relu=False):
    """Cross-correlation as a sum over kernel taps: for each tap (i, j), the
    strided window of the zero-padded input it sees, contracted over the
    group's input channels."""
    if p.layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    x = x.astype(np.float64)
    w = weight.astype(np.float64)
    top, bottom, left, right = p.padding
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    (sh, sw), (dh, dw) = p.stride, p.dilation
    cg, kg = p.c // p.groups, p.k // p.groups
    y = np.zeros((p.n, p.k, p.oh, p.ow))
    for g in range(p.groups):
        xg = xp[:, g * cg:(g + 1) * cg]
        wg = w[g * kg:(g + 1) * kg]
        for i in range(p.kh):
            for j in range(p.kw):
                win = xg[:, :, i * dh: i * dh + sh * (p.oh - 1) + 1: sh,
                         j * dw: j * dw + sw * (p.ow - 1) + 1: sw]
                y[:, g * kg:(g + 1) * kg] += np.einsum("nchw,kc->nkhw", win, wg[:, :, i, j])
    if bias is not None:
        y += bias.astype(np.float64)[None, :, None, None]
    if relu:
        y = np.where(y < 0, 0.0, y)
    if p.layout == "NHWC":
        y = y.transpose(0, 2, 3, 1)
    out[...] = y


def pool2d(x, p, out):
    """Max or average pooling by its definition: every window's taps inside
    the input, listed one output at a time."""
    x = np.asarray(x, np.float64)
    (sh, sw), (dh, dw) = p.stride, p.dilation
    top, bottom, left, right = p.padding
    y = np.empty((p.n, p.c, p.oh, p.ow))
    for oy in range(p.oh):
        for ox in range(p.ow):
            y0, x0 = oy * sh - top, ox * sw - left
            rows = [r for r in range(y0, y0 + dh * p.kh, dh) if 0 <= r < p.h]
            cols = [q for q in range(x0, x0 + dw * p.kw, dw) if 0 <= q < p.w]
            win = x[:, :, rows][:, :, :, cols].reshape(p.n, p.c, -1)
            if p.mode == "max":
                y[:, :, oy, ox] = win.max(axis=2, initial=-np.inf)
                continue
            if p.mode == "avg":  # the window cut at the padded input's edge, padding counted
                count = (min(y0 + p.kh, p.h + bottom) - y0) * (min(x0 + p.kw, p.w + right) - x0)
            else:
                count = len(rows) * len(cols)
            y[:, :, oy, ox] = win.sum(axis=2) / count
    out[...] = y
