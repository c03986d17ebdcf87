"""Lowering: how a conv2d or linear call becomes GEMMs, and which algorithm runs.

A convolution is a GEMM between the weights, seen as a (K/groups) x (C/groups*kh*kw)
matrix per group, and the input patches, one column per output pixel.  When
the kernel covers the whole input (an FC layer written as a conv) or is 1x1
with stride 1, the input already *is* that patch matrix and no copy is
needed; otherwise im2col copies patches into a bounded workspace, or direct
convolution avoids the matrix altogether.  Winograd F(4x4, 3x3) (3x3
stride-1 convs only) turns each 4x4 tile of output pixels into 36 products
of transformed values: 36 GEMMs of tiles x K x C over blocks of tiles
(F(2x2, 3x3), for few tiles: 16 GEMMs over 2x2 tiles).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _args, config
from .backends import DEFAULT, capabilities

#: im2col lowers at most this many bytes of patches at a time (whole output rows).
IM2COL_BUDGET = 8 << 20
#: A lowering workspace above this (for im2col: even for a single output row) is
#: refused with ValueError; algorithm="auto" then runs direct convolution.
WORKSPACE_LIMIT = 1 << 30
#: Winograd's transformed input and GEMM output (V and M) of one thread's block
#: of tiles stay near this many bytes (about an L2 cache), the block at least 64
#: tiles wide (so the GEMMs' panels are full and each pass over the transformed
#: filters does enough work) and at most 512.
WINOGRAD_BLOCK_BYTES = 1 << 20


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
    algorithm: str         # what runs: "gemm" (no lowering copy), "im2col", "direct" or
    #                        "winograd" (then m counts output tiles of winograd_tile
    #                        squared pixels, and there are (winograd_tile + 2)^2 GEMMs
    #                        m x n x k, tile_block tiles at a time)
    tile_block: int = 0
    tile_gemm: str = ""    # winograd: how its GEMMs run on a block ("packed GEMM",
    #                        or "few-tile kernel": the transformed filters streamed once)
    winograd_tile: int = 4  # winograd: F(4x4, 3x3), or F(2x2, 3x3) (m counts 2x2 tiles)

    @property
    def kernel(self) -> str:
        """The backend kernel that runs: the algorithm, "winograd2" for F(2x2, 3x3)."""
        return "winograd2" if self.algorithm == "winograd" and self.winograd_tile == 2 \
            else self.algorithm

    def __str__(self) -> str:
        shape = f"{self.m}\u00d7{self.n}\u00d7{self.k}"
        groups = f", {self.groups} groups" if self.groups > 1 else ""
        if self.algorithm == "winograd":
            t = self.winograd_tile
            return (f"Winograd F({t}\u00d7{t}, 3\u00d73): {(t + 2) ** 2} GEMMs {shape} over "
                    f"{self.m} tiles, "
                    f"{self.tile_block} at a time on the {self.tile_gemm} "
                    f"({_mib(self.workspace_bytes)} workspace)")
        if self.algorithm == "direct":
            return f"direct convolution (as GEMM {shape}{groups}, no workspace)"
        if self.workspace_bytes == 0:
            return f"GEMM {shape}{groups} (no copy)"
        return f"GEMM {shape}{groups} ({self.algorithm}, {_mib(self.workspace_bytes)} workspace)"


#: Which GEMM operand ("a" or "b") a group's weights are in each layout (see group_gemm).
WEIGHT_SIDE = {"NCHW": "a", "NHWC": "b"}


def group_gemm(layout: str, weight_g, patches):
    """One group's convolution as the GEMM out_g = a @ b: (a, b, bias_axis).

        NCHW  out_g[K/g, pixels] = W_g @ patches     (a bias per row)
        NHWC  out_g[pixels, K/g] = patches @ W_g^T   (a bias per column)

    weight_g is (K/g, C/g*kh*kw); patches is the operand of the patch matrix
    (C/g*kh*kw x pixels for NCHW, its transpose for NHWC), whatever form a
    backend gives it.  Every backend's per-group GEMM is built here."""
    if WEIGHT_SIDE[layout] == "a":
        return weight_g, patches, 0
    return patches, weight_g.T, 1


def _mib(nbytes: int) -> str:
    return f"{nbytes / (1 << 20):.2f} MiB" if nbytes >= 1 << 16 else f"{nbytes} B"


def choose_algorithm(p: _args.ConvParams, requested: str, backend: str = DEFAULT) -> str:
    """The algorithm that runs for `requested` ("auto", "direct", "im2col", "winograd").

    Full-size and pointwise convs are GEMMs on the input as it lies, so both
    "auto" and "im2col" run them as "gemm" (im2col's copy would be the
    identity).  For the rest, "auto" follows the cost model below; it picks
    Winograd only when fastconv.config's switch allows (config.set_winograd).
    "winograd" on a conv it cannot run raises ValueError naming the argument.
    """
    if requested == "direct":
        return "direct"
    if requested == "winograd":
        _check_winograd(p, backend)
        return "winograd"
    if p.is_full_size or p.is_pointwise:
        return "gemm"
    if requested == "im2col":
        return "im2col"
    can = capabilities(backend)
    if can.winograd and config.get_winograd() and winograd_fits(p) and _winograd_wins(p):
        return "winograd"
    return "direct" if conv_kind(p) in can.auto_direct else "im2col"


def conv_kind(p: _args.ConvParams) -> str:
    """The kind of conv a backend's "auto" preference names (backends.Capabilities):
    "depthwise" (one input channel per group), "grouped", "1x1" or "kxk"."""
    if p.groups > 1:
        return "depthwise" if p.is_depthwise else "grouped"
    return "1x1" if p.kh * p.kw == 1 else "kxk"


def _winograd_needs(p: _args.ConvParams) -> tuple:
    """(holds, what) for each condition of Winograd F(4x4, 3x3)."""
    return (((p.kh, p.kw) == (3, 3), f"a 3x3 kernel (weight is {p.kh}x{p.kw})"),
            (p.stride == (1, 1), f"stride 1 (stride={p.stride})"),
            (p.dilation == (1, 1), f"dilation 1 (dilation={p.dilation})"),
            (p.groups == 1, f"groups=1 (groups={p.groups})"))


def winograd_fits(p: _args.ConvParams) -> bool:
    """Winograd F(4x4, 3x3) computes this conv: 3x3, stride 1, dilation 1, groups 1."""
    return all(ok for ok, _ in _winograd_needs(p))


def _check_winograd(p: _args.ConvParams, backend: str) -> None:
    for ok, what in _winograd_needs(p):
        if not ok:
            raise ValueError(f"algorithm='winograd' needs {what}")
    can = capabilities(backend)
    if can.runs_plan and not can.winograd:
        raise ValueError(f"algorithm='winograd' runs on the C backend only (backend={backend!r})")


def winograd_tiles(p: _args.ConvParams, tile: int = 4) -> int:
    """tile x tile output tiles of a Winograd F(tile x tile, 3x3) conv."""
    return p.n * -(-p.oh // tile) * -(-p.ow // tile)


def winograd_tile(p: _args.ConvParams) -> int:
    """Which Winograd runs: F(4x4, 3x3), or F(2x2, 3x3) when F(4x4) would have
    fewer than 16 tiles.  With few tiles the GEMMs stream the transformed
    filters for little work, and F(2x2)'s are 16 matrices, not 36 (measured:
    docs/WINOGRAD.md)."""
    return 2 if winograd_tiles(p, 4) < 16 else 4


# Geometry rule of auto's Winograd choice (measured: docs/WINOGRAD.md).
# Winograd does 4x fewer multiply-adds than direct, but its transformed
# filters are 4x the weights, which every call streams, so it needs enough
# tiles to amortise them, and enough channels for its GEMMs to beat the
# transforms.
def _winograd_wins(p: _args.ConvParams) -> bool:
    return p.c >= 16 and p.k >= 16 and winograd_tiles(p) >= 16


def winograd_workspace(p: _args.ConvParams, itemsize: int, threads: int,
                       tile: int = 4) -> tuple[int, int]:
    """(bytes, tiles) of Winograd's workspace: a block of tiles per thread
    (WINOGRAD_BLOCK_BYTES), no more than the conv has, within WORKSPACE_LIMIT."""
    per_tile = (tile + 2) ** 2 * (p.c + p.k) * itemsize
    block = min(512, max(64, WINOGRAD_BLOCK_BYTES // per_tile))
    tiles = max(1, min(threads * block, winograd_tiles(p, tile), WORKSPACE_LIMIT // per_tile))
    return tiles * per_tile, tiles


def im2col_workspace(p: _args.ConvParams, itemsize: int) -> int:
    """Bytes of patches im2col lowers at once: whole output rows within the
    budget, and at least one row (which may exceed WORKSPACE_LIMIT)."""
    row = im2col_row_bytes(p, itemsize)
    rows = max(1, min(p.oh, IM2COL_BUDGET // max(row, 1)))
    return rows * row


def im2col_row_bytes(p: _args.ConvParams, itemsize: int) -> int:
    """Bytes of the patches of one output row (of one image and group)."""
    return (p.c // p.groups) * p.kh * p.kw * p.ow * itemsize


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
        hp, wp = p.padded_hw
        return p.n * hp * wp * (p.k if p.is_depthwise else p.c) * itemsize, "the padded input"
    return 0, ""


def plan_conv(p: _args.ConvParams, itemsize: int, algorithm: str = "auto",
              backend: str = DEFAULT) -> GemmPlan:
    """The plan for `algorithm`.  A copy of more than WORKSPACE_LIMIT bytes is
    refused with ValueError before anything is allocated; "auto" first tries
    another algorithm (direct and im2col copy different things)."""
    algo = choose_algorithm(p, algorithm, backend)
    if algo == "winograd":
        tile = winograd_tile(p)
        ws, tiles = winograd_workspace(p, itemsize, config.get_num_threads(), tile)
        if ws > WORKSPACE_LIMIT:
            raise ValueError(f"winograd would need {ws} bytes of workspace for a single tile, "
                             f"above the {WORKSPACE_LIMIT}-byte workspace limit "
                             "(fastconv.lower.WORKSPACE_LIMIT)")
        from .backends import c  # algorithm "winograd" runs on the C backend only
        block, _, few = c.winograd_plan(tile, p.c, p.k, winograd_tiles(p, tile), ws,
                                        np.dtype(f"f{itemsize}"))
        return GemmPlan(winograd_tiles(p, tile), p.k, p.c, 1, ws, algo, block,
                        "few-tile kernel" if few else "packed GEMM", tile)
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
           algorithm="auto", dtype=np.float32, backend=DEFAULT) -> GemmPlan:
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
