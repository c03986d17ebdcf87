"""FC layers and convolutions as each other's weights.

* An FC layer on a C x H x W feature map is a convolution whose kernel is the
  whole map: `fc_to_conv` reshapes its (K, C*H*W) matrix to (K, C, H, W), and
  `conv_to_fc` undoes it.  Both are exact (a reshape; no arithmetic).
* A convolution is an FC layer whose matrix is mostly zeros: `conv_matrix`
  writes that matrix out, one row per output value, one column per input value.
"""
from __future__ import annotations

import numpy as np

from . import _args, lower


def _weight(name: str, weight, ndim: int, layout: str) -> np.ndarray:
    if not isinstance(weight, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray; got {type(weight).__name__}")
    if weight.dtype.newbyteorder("=") not in _args._FLOATS:
        raise TypeError(f"{name} must be a floating-point array (float32 or float64); "
                        f"got dtype {weight.dtype}")
    if weight.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {layout}; got shape {weight.shape}")
    return weight


def _chw(input_shape) -> tuple[int, int, int]:
    try:
        dims = tuple(input_shape)
    except TypeError:
        raise ValueError(f"input_shape must be (C, H, W); got {input_shape!r}") from None
    if len(dims) != 3 or not all(_args._is_int(d) and d >= 1 for d in dims):
        raise ValueError(f"input_shape must be three positive ints (C, H, W); got {input_shape!r}")
    return tuple(int(d) for d in dims)


def fc_to_conv(weight: np.ndarray, input_shape) -> np.ndarray:
    """An FC weight (K, C*H*W) acting on a flattened C x H x W map, as the
    (K, C, H, W) kernel of the full-size convolution that computes the same
    thing: conv2d(x, fc_to_conv(w, x.shape[1:])) == linear(x.reshape(N, -1), w).

    Returns a view of `weight` when it is C-contiguous, else a copy.
    """
    weight = _weight("weight", weight, 2, "(out_features, in_features)")
    c, h, w = _chw(input_shape)
    if weight.shape[1] != c * h * w:
        raise ValueError(f"weight has {weight.shape[1]} input features but input_shape "
                         f"{(c, h, w)} has C*H*W = {c * h * w}")
    return np.ascontiguousarray(weight).reshape(weight.shape[0], c, h, w)


def conv_to_fc(weight: np.ndarray) -> np.ndarray:
    """A conv kernel (K, C, kh, kw) as the (K, C*kh*kw) weight of the FC layer
    it equals when the kernel covers the whole input (inverse of fc_to_conv).

    Returns a view of `weight` when it is C-contiguous, else a copy.
    """
    weight = _weight("weight", weight, 4, "(K, C, kh, kw)")
    return np.ascontiguousarray(weight).reshape(weight.shape[0], -1)


def conv_matrix(weight: np.ndarray, input_shape, stride=1, padding=0, dilation=1,
                groups=1) -> np.ndarray:
    """The dense (K*OH*OW) x (C*H*W) matrix M of conv2d(x, weight, ...) on one
    C x H x W image, so that M @ x.ravel() == conv2d(x[None], weight, ...).ravel().

    Row (k, oy, ox) holds weight[k] at the columns of the inputs that output
    sees and zeros elsewhere: each row has at most C/groups*kh*kw nonzeros out
    of C*H*W (fewer where the window overlaps padding).  Arguments as conv2d.
    """
    weight = _weight("weight", weight, 4, "(K, C/groups, kh, kw)")
    c, h, w = _chw(input_shape)
    x = lower.shaped_like("input_shape", (1, c, h, w), weight.dtype)
    _, weight, _, p = _args.conv2d_args(x, weight, None, stride, padding, dilation, groups,
                                        "NCHW")
    cg, kg = c // p.groups, p.k // p.groups
    top, _, left, _ = p.padding
    oy = np.arange(p.oh)[:, None]
    ox = np.arange(p.ow)[None, :]
    m = np.zeros((p.k, p.oh, p.ow, c, h, w), weight.dtype)
    for i in range(p.kh):
        iy = oy * p.stride[0] - top + i * p.dilation[0]          # (OH, 1)
        for j in range(p.kw):
            ix = ox * p.stride[1] - left + j * p.dilation[1]     # (1, OW)
            inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
            ry, rx = np.nonzero(inside)                          # outputs this tap reaches
            sy, sx = iy[ry, 0], ix[0, rx]
            for g in range(p.groups):
                ks = np.arange(g * kg, (g + 1) * kg)[:, None, None]
                cs = np.arange(g * cg, (g + 1) * cg)[None, :, None]
                # Each (output, input) pair is reached by exactly one tap, so
                # assignment (not accumulation) is right.
                m[ks, ry, rx, cs, sy, sx] = weight[ks, cs - g * cg, i, j]
    return m.reshape(p.k * p.oh * p.ow, c * h * w)
