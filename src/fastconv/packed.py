"""Weights packed once: a layer's constant operand kept in the C kernels' layout.

    pw = fastconv.PackedWeight(weight, bias)
    y = fastconv.conv2d(x, pw, stride=2, padding=1)    # or fastconv.linear(x, pw)

conv2d and linear take a PackedWeight in place of weight (and bias).  On the
C backend each kernel form a call needs (direct convolution's tiles, im2col's
GEMM operand, or that of a 1x1 / full-size conv or a linear layer, per group) is
packed at its first use for the active ISA and kept, so later calls do no
weight work and give bit-identical results; other backends read the weight
as it is.  nn.Conv2d and nn.Linear keep one for their weights.  The weight
and bias are referenced, not copied: change them and make a new PackedWeight.
A PackedWeight may be shared by threads calling concurrently.
"""
from __future__ import annotations

import threading

import numpy as np

from . import _args


class PackedWeight:
    """weight (K, C/groups, kh, kw) for conv2d or (out_features, in_features)
    for linear, and optional bias (K,), packed on first use per kernel form."""

    def __init__(self, weight, bias=None):
        weight = _args.float_array("weight", weight)
        if weight.ndim not in (2, 4):
            raise ValueError("weight must be 4-D (K, C/groups, kh, kw) or 2-D "
                             f"(out_features, in_features); got shape {weight.shape}")
        self.weight = np.ascontiguousarray(weight)
        self.bias = _args.bias_array(bias, weight.shape[0], weight.dtype,
                                     f"weight's {weight.shape[0]} outputs")
        self._packs = {}
        self._lock = threading.Lock()

    @property
    def dtype(self):
        return self.weight.dtype

    @property
    def nbytes(self) -> int:
        """Bytes held by the packs made so far."""
        from .backends import c
        return sum(int(c.lib.fc_packed_bytes(pk)) for pk in list(self._packs.values()))

    def unpack(self, what: str, bias, ndim: int):
        """(weight, bias) for a call of `what` that was given this PackedWeight."""
        if bias is not None:
            raise ValueError(f"{what}: bias must be None when weight is a PackedWeight "
                             "(the bias is packed with it)")
        if self.weight.ndim != ndim:
            raise ValueError(f"{what} needs a {ndim}-D weight; this PackedWeight holds "
                             f"shape {self.weight.shape}")
        return self.weight, self.bias

    def _get(self, key, make):
        from .backends import c
        key = key + (c.isa(),)  # a pack is only valid for the ISA it was made on
        pk = self._packs.get(key)
        if pk is None:
            with self._lock:
                pk = self._packs.get(key)
                if pk is None:
                    pk = self._packs[key] = make()
        return pk

    def conv(self, algorithm: str, groups: int, layout: str):
        """The C pack of conv2d's kernel `algorithm` ("direct", "winograd", "winograd2"
        (F(2x2, 3x3)), or "im2col" per layout)."""
        from .backends import c
        if algorithm in ("direct", "winograd", "winograd2"):
            layout = "NCHW"  # their layout does not depend on it
        return self._get((algorithm, groups, layout),
                         lambda: c.pack_conv(self.weight, self.bias, groups, algorithm, layout))

    def gemm_operand(self, key, side: str, mat):
        """The C GEMM's pack of operand `mat` (side "a" or "b"), a view of the
        weight that `key` names (the same key must always mean the same view)."""
        from .backends import c
        return self._get(("gemm", side) + tuple(key), lambda: c.pack_gemm(mat, side))

    def __reduce__(self):
        # The packs and the lock stay behind: a copy (a Dask worker's) packs again.
        return PackedWeight, (self.weight, self.bias)

    def __repr__(self):
        return f"PackedWeight({self.weight.shape}, {self.dtype}, bias={self.bias is not None})"
