"""Backends.  Each provides the same two entry points on validated arguments:

gemm(a, b, out, bias=None, bias_axis=1, relu=False)
    out[:] = a @ b (+ bias along axis bias_axis of out: 0 = per row, 1 = per
    column) (then ReLU).  a, b, out are 2-D with any strides; out does not
    overlap a, b or bias.
conv2d(x, weight, bias, p, algorithm, out, workspace_bytes, relu=False)
    algorithm is "direct" or "im2col"; x in p.layout with any strides, weight
    contiguous (K, C/groups, kh, kw), out C-contiguous of shape p.out_shape.
pool2d(x, p, out)
    max or average pooling (p: fastconv._args.PoolParams) of NCHW x, any
    strides, into out, C-contiguous of shape p.out_shape.

relu is False, True or, for a backend with FUSED_PRELU = True, the PReLU
slopes along the output channels (fastconv._args.activation); fastconv.api
applies the slopes itself after a backend without it.

The C backend's gemm and conv2d also take packed= (a pack made by its
pack_gemm / pack_conv, see fastconv.packed), which the others never receive.

Lowering to GEMM without a copy (full-size and 1x1 convs) happens above the
backends, in fastconv.api, so every backend runs those through its gemm.
"""
import importlib


_MODULES = {"c": "c", "numba": "numba", "numpy": "reference"}
_loaded = {}


def get(name: str):
    """The backend module for "c", "numba" or "numpy" (imported on first use)."""
    mod = _loaded.get(name)
    if mod is None:
        mod = _loaded[name] = importlib.import_module(f"{__name__}.{_MODULES[name]}")
    return mod
