"""max_pool2d, avg_pool2d and global pooling on NCHW batches, with
torch.nn.functional's semantics: validate -> backend (C kernels per ISA,
Numba, or the NumPy oracle)."""
from __future__ import annotations

import numpy as np

from . import _args
from .backends import get as _backend
from .config import resolve_backend


def _run(what, x, kernel_size, stride, padding, dilation, ceil_mode, mode, backend,
         wide_pads=False):
    be = resolve_backend(backend)
    x, p = _args.pool2d_args(what, x, kernel_size, stride, padding, dilation, ceil_mode, mode,
                             wide_pads)
    return run_pool2d(x, p, be)


def params_for(cache: dict, x, validate):
    """(x, PoolParams) for a layer's input x: from `cache`, the layer's dict by
    (shape, dtype) (the params depend on nothing else once the layer's settings
    are fixed), or validate(x) -> (x, params) the first time."""
    key = (x.shape, x.dtype)
    p = cache.get(key)
    if p is None:
        x, p = validate(x)
        if len(cache) >= 16:   # a layer fed ever new sizes keeps only recent ones
            cache.clear()
        cache[key] = p
    return x, p


def run_pool2d(x, p, backend):
    """Pool x (as _args.pool2d_args returned it) by its PoolParams p on `backend`
    (a resolved name): the part of a call after validation, for layers that
    keep p per input shape."""
    y = np.empty(p.out_shape, x.dtype)
    if y.size:
        _backend(backend).pool2d(x, p, y)
    return y


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
               backend=None):
    """Max over each window (padding never wins; NaN does), as torch's F.max_pool2d.
    stride defaults to kernel_size; padding: int, pair or ((top, bottom), (left, right)),
    at most half the kernel."""
    return _run("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode, "max",
                backend)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, *, backend=None):
    """Mean over each window, as torch's F.avg_pool2d: with count_include_pad the
    divisor is the window clipped to the padded input, else the taps inside the input."""
    mode = "avg" if _args.flag("count_include_pad", count_include_pad) else "avg_exclude_pad"
    return _run("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode, mode, backend)


def window_pool2d(x, kernel_size, stride, padding, dilation=1, ceil_mode=False, mode="max", *,
                  backend=None, what="pool2d"):
    """Pooling with ONNX's MaxPool / AveragePool rules on the same kernels:
    each padding side may be anything smaller than the dilated window (torch
    allows half the kernel).  mode: "max", "avg" (count_include_pad: divide by
    the window clipped to the padded input) or "avg_exclude_pad"."""
    mode = _args.choice("mode", mode, ("max", "avg", "avg_exclude_pad"))
    if mode != "max" and _args.pair("dilation", dilation, 1) != (1, 1):
        raise ValueError(f"{what}: average pooling takes no dilation; got {dilation!r}")
    return _run(what, x, kernel_size, stride, padding, dilation, ceil_mode, mode, backend,
                wide_pads=True)


def _global(what, x, mode, backend):
    x = _args.float_array("x", x)
    if x.ndim != 4 or x.shape[2] * x.shape[3] == 0:
        raise ValueError(f"{what} takes x of shape (N, C, H, W) with H, W >= 1; got {x.shape}")
    return _run(what, x, x.shape[2:], 1, 0, 1, False, mode, backend)


def global_avg_pool2d(x, *, backend=None):
    """Mean of each channel's map: (N, C, H, W) -> (N, C, 1, 1)."""
    return _global("global_avg_pool2d", x, "avg", backend)


def global_max_pool2d(x, *, backend=None):
    """Max of each channel's map: (N, C, H, W) -> (N, C, 1, 1)."""
    return _global("global_max_pool2d", x, "max", backend)
