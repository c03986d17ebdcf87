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


def choose_algorithm(p: _args.ConvParams, requested: str) -> str:
    """The algorithm that runs for `requested` ("auto", "direct", "im2col").

    Full-size and pointwise convs are GEMMs on the input as it lies, so both
    "auto" and "im2col" run them as "gemm" (im2col's copy would be the
    identity).  "auto" takes direct convolution for depthwise layers, whose
    per-group GEMM is too thin to pay for lowering, and im2col otherwise.
    """
    if requested == "direct":
        return "direct"
    if p.is_full_size or p.is_pointwise:
        return "gemm"
    if requested == "auto" and p.groups == p.c and p.groups > 1:
        return "direct"
    return "im2col"


def im2col_workspace(p: _args.ConvParams, itemsize: int) -> int:
    """Bytes of patches im2col lowers at once: whole output rows within the
    budget, and at least one row (which may exceed WORKSPACE_LIMIT)."""
    row = (p.c // p.groups) * p.kh * p.kw * p.ow * itemsize
    rows = max(1, min(p.oh, IM2COL_BUDGET // max(row, 1)))
    return rows * row


def plan_conv(p: _args.ConvParams, itemsize: int, algorithm: str = "auto") -> GemmPlan:
    """The plan for `algorithm`.  A lowering whose workspace would exceed
    WORKSPACE_LIMIT is refused with ValueError before anything is allocated;
    "auto" then takes direct convolution, which needs none."""
    algo = choose_algorithm(p, algorithm)
    if algo == "im2col":
        ws = im2col_workspace(p, itemsize)
        what = "im2col would need {} bytes for one output row"
    elif algo == "gemm" and p.is_full_size and p.layout == "NHWC" and p.c > 1 and p.h * p.w > 1:
        # NHWC patches reordered to the weights' CHW (the identity for one channel or pixel)
        ws = p.n * p.c * p.h * p.w * itemsize
        what = "reordering the NHWC input of this full-size conv would need {} bytes"
    else:
        ws = 0
    if ws > WORKSPACE_LIMIT:
        if algorithm != "auto":
            raise ValueError(what.format(ws) + f", above the {WORKSPACE_LIMIT}-byte workspace "
                             "limit (fastconv.lower.WORKSPACE_LIMIT); use algorithm='direct'")
        algo, ws = "direct", 0
    kdim = (p.c // p.groups) * p.kh * p.kw
    return GemmPlan(p.n * p.oh * p.ow, p.k // p.groups, kdim, p.groups, ws, algo)


def conv2d(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1, layout="NCHW",
           algorithm="auto", dtype=np.float32) -> GemmPlan:
    """The GemmPlan of conv2d on arrays of these shapes (nothing is computed)."""
    x = np.lib.stride_tricks.as_strided(np.zeros(1, dtype), shape=tuple(x_shape),
                                        strides=(0,) * len(x_shape))
    w = np.lib.stride_tricks.as_strided(np.zeros(1, dtype), shape=tuple(w_shape),
                                        strides=(0,) * len(w_shape))
    _args.choice("algorithm", algorithm, _args.ALGORITHMS)
    _, _, _, p = _args.conv2d_args(x, w, None, stride, padding, dilation, groups, layout)
    return plan_conv(p, np.dtype(dtype).itemsize, algorithm)


def linear(x_shape, w_shape) -> GemmPlan:
    """The GemmPlan of linear(x, weight): m = batch, n = out_features, k = in_features."""
    x_shape, w_shape = tuple(x_shape), tuple(w_shape)
    if len(w_shape) != 2 or len(x_shape) not in (1, 2) or x_shape[-1] != w_shape[1]:
        raise ValueError(f"linear: x {x_shape} and weight {w_shape} do not match "
                         "(x (batch, in_features), weight (out_features, in_features))")
    m = x_shape[0] if len(x_shape) == 2 else 1
    return GemmPlan(m, w_shape[0], w_shape[1], 1, 0, "gemm")
