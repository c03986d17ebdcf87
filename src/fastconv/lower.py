"""Lowering: how a conv2d or linear call becomes GEMMs, and which algorithm runs.

A convolution is a GEMM between the weights, seen as a (K/groups) x (C/groups*kh*kw)
matrix per group, and the input patches, one column per output pixel.  When
the kernel covers the whole input (an FC layer written as a conv) or is 1x1
with stride 1, the input already *is* that patch matrix and no copy is
needed; otherwise im2col copies patches into a bounded workspace, or direct
convolution avoids the matrix altogether.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _args

#: im2col lowers at most this many bytes of patches at a time (whole output rows).
IM2COL_BUDGET = 8 << 20
#: A lowering workspace above this (for im2col: even for a single output row) is
#: refused with ValueError; algorithm="auto" then runs direct convolution.
WORKSPACE_LIMIT = 1 << 30


@dataclass(frozen=True)
class GemmPlan:
    """The GEMM a conv2d or linear call lowers to (per group)."""
    m: int                 # rows of the output matrix: N*OH*OW output pixels (N for linear)
    n: int                 # output channels per group
    k: int                 # reduction length: C/groups*kh*kw
    groups: int
    workspace_bytes: int   # lowering copy; 0 when the input is the GEMM operand as it lies
    #                        (direct conv's zero-padded input is a layout transform, not
    #                        counted here, but held to WORKSPACE_LIMIT like every copy)
    algorithm: str         # what runs: "gemm" (no lowering copy), "im2col" or "direct"

    def __str__(self) -> str:
        shape = f"{self.m}\u00d7{self.n}\u00d7{self.k}"
        groups = f", {self.groups} groups" if self.groups > 1 else ""
        if self.algorithm == "direct":
            return f"direct convolution (as GEMM {shape}{groups}, no workspace)"
        if self.workspace_bytes == 0:
            return f"GEMM {shape}{groups} (no copy)"
        return f"GEMM {shape}{groups} ({self.algorithm}, {_mib(self.workspace_bytes)} workspace)"


def _mib(nbytes: int) -> str:
    return f"{nbytes / (1 << 20):.2f} MiB" if nbytes >= 1 << 16 else f"{nbytes} B"


def choose_algorithm(p: _args.ConvParams, requested: str, backend: str = "c") -> str:
    """The algorithm that runs for `requested` ("auto", "direct", "im2col").

    Full-size and pointwise convs are GEMMs on the input as it lies, so both
    "auto" and "im2col" run them as "gemm" (im2col's copy would be the
    identity).  For the rest, "auto" follows the cost model below, on every
    backend (`backend` is accepted so that callers need not know that).
    """
    if requested == "direct":
        return "direct"
    if p.is_full_size or p.is_pointwise:
        return "gemm"
    if requested == "im2col":
        return "im2col"
    # One rule for both backends: Numba's direct conv runs on register tiles
    # like the C core's, and its algorithms rank the same (docs/TUNING.md).
    return "im2col" if _im2col_wins(p) else "direct"


# Cost model of algorithm="auto" (measured per layer kind: docs/TUNING.md).
# Direct convolution reads each input pixel kh*kw times from cache instead of
# copying it kh*kw times, so it wins (or ties) whenever the kernel has more
# than one tap.  With a single tap the lowering copy is a mere subsample and
# the GEMM's packed panels beat the direct tiles' strided loads, so 1x1 convs
# go to im2col (strided) or straight to the GEMM (stride 1, no copy).
def _im2col_wins(p: _args.ConvParams) -> bool:
    return p.kh * p.kw == 1 and p.groups == 1


def im2col_workspace(p: _args.ConvParams, itemsize: int) -> int:
    """Bytes of patches im2col lowers at once: whole output rows within the
    budget, and at least one row (which may exceed WORKSPACE_LIMIT)."""
    row = (p.c // p.groups) * p.kh * p.kw * p.ow * itemsize
    rows = max(1, min(p.oh, IM2COL_BUDGET // max(row, 1)))
    return rows * row


def _copies(p: _args.ConvParams, itemsize: int, algo: str) -> tuple[int, str]:
    """(bytes `algo` copies the input into, what that copy is)."""
    if algo == "im2col":
        return im2col_workspace(p, itemsize), "im2col's patches"
    if algo == "gemm" and p.is_full_size and p.layout == "NHWC" and p.c > 1 and p.h * p.w > 1:
        # NHWC patches reordered to the weights' CHW (the identity for one channel or pixel)
        return p.n * p.c * p.h * p.w * itemsize, "the NHWC input reordered to CHW"
    if algo == "direct":
        # Not a lowering but a layout transform: the zero-padded input (with
        # channels widened to K for depthwise convs with a channel multiplier).
        hp, wp = p.h + p.padding[0] + p.padding[1], p.w + p.padding[2] + p.padding[3]
        depthwise = p.groups == p.c and p.groups > 1
        return p.n * hp * wp * (p.k if depthwise else p.c) * itemsize, "the padded input"
    return 0, ""


def plan_conv(p: _args.ConvParams, itemsize: int, algorithm: str = "auto",
              backend: str = "c") -> GemmPlan:
    """The plan for `algorithm`.  A copy of more than WORKSPACE_LIMIT bytes is
    refused with ValueError before anything is allocated; "auto" first tries
    another algorithm (direct and im2col copy different things)."""
    algo = choose_algorithm(p, algorithm, backend)
    copy, what = _copies(p, itemsize, algo)
    if copy > WORKSPACE_LIMIT and algorithm == "auto":
        for other in ("direct", "im2col"):
            if other != algo and _copies(p, itemsize, other)[0] <= WORKSPACE_LIMIT:
                algo = other
                copy, what = _copies(p, itemsize, algo)
                break
    if copy > WORKSPACE_LIMIT:
        raise ValueError(f"{algo} would copy {what} into {copy} bytes, above the "
                         f"{WORKSPACE_LIMIT}-byte workspace limit (fastconv.lower.WORKSPACE_LIMIT)")
    ws = 0 if algo == "direct" else copy
    kdim = (p.c // p.groups) * p.kh * p.kw
    return GemmPlan(p.n * p.oh * p.ow, p.k // p.groups, kdim, p.groups, ws, algo)


def conv2d(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1, layout="NCHW",
           algorithm="auto", dtype=np.float32, backend="c") -> GemmPlan:
    """The GemmPlan of conv2d on arrays of these shapes on `backend` (nothing
    is computed)."""
    dtype = _args.float_dtype("dtype", dtype)
    x = shaped_like("x_shape", x_shape, dtype)
    w = shaped_like("w_shape", w_shape, dtype)
    _args.choice("algorithm", algorithm, _args.ALGORITHMS)
    _args.choice("backend", backend, _args.BACKENDS)
    _, _, _, p = _args.conv2d_args(x, w, None, stride, padding, dilation, groups, layout)
    return plan_conv(p, dtype.itemsize, algorithm, backend)


def shaped_like(name: str, shape, dtype=np.float32) -> np.ndarray:
    """A zero-byte array of `shape`, so that argument validation runs on shapes alone."""
    shape = _args.shape(name, shape)
    return np.lib.stride_tricks.as_strided(np.zeros(1, dtype), shape=shape,
                                           strides=(0,) * len(shape))


def linear(x_shape, w_shape) -> GemmPlan:
    """The GemmPlan of linear(x, weight): m = batch, n = out_features, k = in_features."""
    x_shape, w_shape = _args.shape("x_shape", x_shape), _args.shape("w_shape", w_shape)
    if len(w_shape) != 2 or len(x_shape) not in (1, 2) or x_shape[-1] != w_shape[1]:
        raise ValueError(f"linear: x {x_shape} and weight {w_shape} do not match "
                         "(x (batch, in_features), weight (out_features, in_features))")
    m = x_shape[0] if len(x_shape) == 2 else 1
    return GemmPlan(m, w_shape[0], w_shape[1], 1, 0, "gemm")
