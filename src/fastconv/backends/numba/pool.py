"""Max and average pooling: one task per (n, c) plane; per output row, each
tap of the window is one pass along the row (y[ox] op= x[ox * stride +
tap]) over the outputs whose tap lies inside the input, which LLVM
vectorises.  Every output sees its taps in rows-then-columns order, as in
the C kernels (csrc/conv/pool.inc)."""
import numba
import numpy as np

from . import _runtime

_MODES = {"max": 0, "avg": 1, "avg_exclude_pad": 2}


@numba.njit(**_runtime.PARALLEL_JIT)
def _pool(x, off, sn, sc, sh, sw, y, n_, c, h, w, kh, kw, oh, ow, str_h, str_w,
          top, bottom, left, right, dil_h, dil_w, mode, init):
    for plane in numba.prange(n_ * c):
        base = off + (plane // c) * sn + (plane % c) * sc
        for oy in range(oh):
            yr = y[(plane * oh + oy) * ow:(plane * oh + oy + 1) * ow]
            yr[:] = init
            y0 = oy * str_h - top
            for i in range(kh):
                iy = y0 + i * dil_h
                if iy < 0 or iy >= h:
                    continue
                for j in range(kw):
                    o = j * dil_w - left
                    lo = 0 if o >= 0 else (-o + str_w - 1) // str_w
                    hi = min(ow, (w - o - 1) // str_w + 1) if w - o > 0 else 0
                    start = base + iy * sh + (lo * str_w + o) * sw
                    step = str_w * sw
                    for ox in range(lo, hi):
                        v = x[start + (ox - lo) * step]
                        if mode == 0:
                            if v > yr[ox] or v != v:
                                yr[ox] = v
                        else:
                            yr[ox] += v
            if mode == 0:
                continue
            h0, h1 = y0, min(y0 + kh, h + bottom)
            if mode == 2:
                h0, h1 = max(h0, 0), min(h1, h)
            for ox in range(ow):
                w0 = ox * str_w - left
                w1 = min(w0 + kw, w + right)
                if mode == 2:
                    w0, w1 = max(w0, 0), min(w1, w)
                yr[ox] /= (h1 - h0) * (w1 - w0)


def pool2d(x, p, out):
    """See fastconv.backends.c.pool2d; out is C-contiguous (N, C, OH, OW)."""
    span, off, (sn, sc, sh, sw) = _runtime.flat(x)
    init = x.dtype.type(-np.inf if p.mode == "max" else 0)
    _runtime.use_threads()
    _runtime.launch(_pool, span, off, sn, sc, sh, sw, out.reshape(-1), p.n, p.c, p.h, p.w,
                    p.kh, p.kw, p.oh, p.ow, p.stride[0], p.stride[1], *p.padding,
                    p.dilation[0], p.dilation[1], _MODES[p.mode], init)
