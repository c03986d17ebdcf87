"""conv2d, linear and matmul: validate -> plan -> backend."""
from __future__ import annotations

import numpy as np

from . import _args, lower
from .backends import capabilities, get as _backend
from .config import get_num_threads, get_winograd, resolve_backend
from .packed import PackedWeight


def _result(out, shape, dtype, *inputs):
    """(array the kernel writes, array returned).  The kernel always gets a
    fresh C-contiguous array unless the caller's `out` is already one that
    overlaps no input."""
    if out is not None and out.flags.c_contiguous and \
            not any(i is not None and np.may_share_memory(out, i) for i in inputs):
        return out, out
    return np.empty(shape, dtype), out


def _finish(target, out):
    if out is None:
        return target
    if out is not target:
        out[...] = target
    return out


def matmul(a, b, *, backend=None, out=None):
    """a @ b for 2-D float32/float64 arrays."""
    be = resolve_backend(backend)
    a, b = _args.matmul_args(a, b)
    shape = (a.shape[0], b.shape[1])
    out = _args.out_array(out, shape, a.dtype)
    target, out = _result(out, shape, a.dtype, a, b)
    if target.size:
        _backend(be).gemm(a, b, target)
    return _finish(target, out)


def linear(x, weight, bias=None, *, backend=None, out=None, relu=False,
           negative_slope=None, clip_max=None):
    """x @ weight.T + bias, with weight (out_features, in_features), as torch's F.linear.
    weight may be a PackedWeight (holding the bias).  relu=True applies ReLU
    in the kernel's store; negative_slope (a scalar or one per output
    feature) applies PReLU there instead: y < 0 ? slope * y : y.  clip_max
    (> 0, with relu=True) clamps the result at it too (ReLU6: clip_max=6)."""
    be = resolve_backend(backend)
    packed = None
    if isinstance(weight, PackedWeight):
        packed, (weight, bias) = weight, weight.unpack("linear", bias, 2)
    x, weight, bias = _args.linear_args(x, weight, bias)
    relu = _args.activation(relu, negative_slope, weight.shape[0], x.dtype)
    clip_max = _args.clip_bound(clip_max, relu)
    shape = x.shape[:-1] + (weight.shape[0],)
    out = _args.out_array(out, shape, x.dtype)
    target, out = _result(out, shape, x.dtype, x, weight, bias)
    if target.size:
        x2, y2 = (x, target) if x.ndim == 2 else (x[None], target[None])
        kernels, can = _backend(be), capabilities(be)
        relu, slope = _epilogue(can, relu)
        fused = clip_max if can.fused_clip else None
        _gemm(kernels.gemm, x2, weight.T, y2, bias, 1, relu,
              packed if can.packed else None, ("b", 0), fused)
        # What the store did not apply: PReLU slopes, the clamp.
        _args.apply_activation(target, False if slope is None else slope,
                               None if fused is not None else clip_max, -1)
    return _finish(target, out)


def _epilogue(can, relu):
    """(what the kernels apply in their store, PReLU slopes to apply after
    them), by the backend's Capabilities `can`."""
    if isinstance(relu, np.ndarray) and not can.fused_prelu:
        return False, relu
    return relu, None


def _gemm(gemm, a, b, y, bias, bias_axis, relu, packed, key, clip_max=None, accumulate=False):
    """gemm(a, b, y, ...), the weight operand (key[0]: "a" or "b") read from its
    pack in `packed` when there is one (C backend).  A matrix-vector product
    (M or N = 1) streams the weight where it lies, so it gets no pack.
    clip_max: the store's clamp (a backend with fused_clip), or None;
    accumulate: y += a @ b before the epilogue (a backend with accumulate)."""
    clip = {} if clip_max is None else {"clip_max": clip_max}
    if accumulate:
        clip["accumulate"] = True
    if packed is None or a.shape[0] == 1 or b.shape[1] == 1 or a.shape[1] == 0:
        gemm(a, b, y, bias, bias_axis, relu, **clip)
    else:
        side = key[0]
        pk = packed.gemm_operand(key, side, a if side == "a" else b)
        gemm(a, b, y, bias, bias_axis, relu, packed=pk, **clip)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           algorithm="auto", backend=None, layout="NCHW", out=None, relu=False,
           negative_slope=None, clip_max=None, residual=None):
    """2-D convolution with torch.nn.functional.conv2d semantics.

    x is (N, C, H, W), or (N, H, W, C) with layout="NHWC" (the output then is
    NHWC too); weight is (K, C/groups, kh, kw), or a PackedWeight holding it
    and the bias (fastconv.packed: no weight work per call).  padding: int, pair,
    ((top, bottom), (left, right)), "valid" or "same".  algorithm: "auto",
    "direct" or "im2col"; fastconv.lower.conv2d shows what each one runs.
    relu=True applies ReLU in the kernel's store; negative_slope (a scalar or
    one per output channel) applies PReLU there instead: y < 0 ? slope * y : y.
    clip_max (> 0, with relu=True) clamps the result at it too (ReLU6: clip_max=6).
    residual: an array broadcastable to the output, added after the bias and
    before the activation (a residual block's sum: relu(conv(x) + skip)); a
    conv that runs as a GEMM adds it in the kernel's store.  out=residual
    writes the result over it.
    """
    be = resolve_backend(backend)
    _args.choice("algorithm", algorithm, _args.ALGORITHMS)
    packed = None
    if isinstance(weight, PackedWeight):
        packed, (weight, bias) = weight, weight.unpack("conv2d", bias, 4)
    x, weight, bias, p = _args.conv2d_args(x, weight, bias, stride, padding, dilation,
                                           groups, layout)
    return run_conv2d(x, weight, bias, p, packed, algorithm, be, relu, negative_slope, out,
                      clip_max, residual)


def run_conv2d(x, weight, bias, p, packed, algorithm, be, relu=False, negative_slope=None,
               out=None, clip_max=None, residual=None):
    """conv2d after its validation: x, weight, bias and p (ConvParams) as
    _args.conv2d_args returned them for the call, packed their PackedWeight
    or None, be a resolved backend.  A layer that keeps p per input shape
    and dtype calls this directly (nn.Conv2d)."""
    relu = _args.activation(relu, negative_slope, p.k, x.dtype)
    clip_max = _args.clip_bound(clip_max, relu)
    out = _args.out_array(out, p.out_shape, x.dtype)
    if residual is not None:
        residual = _args.residual_array(residual, p.out_shape, x.dtype)
    target, out = _result(out, p.out_shape, x.dtype, x, weight, bias)
    if target.size == 0:
        return _finish(target, out)
    plan = lower.plan_conv(p, x.itemsize, algorithm, be)
    kernels, can = _backend(be), capabilities(be)
    if residual is not None:
        if not (can.accumulate and can.runs_plan and plan.algorithm == "gemm"):
            # The conv alone, then the sum and the activation here.
            y = run_conv2d(x, weight, bias, p, packed, algorithm, be)
            np.add(y, residual, out=target)
            _args.apply_activation(target, relu, clip_max, 1 if p.layout == "NCHW" else 3)
            return _finish(target, out)
        if target is not residual:
            np.copyto(target, residual)
    relu, slope = _epilogue(can, relu)
    packed = packed if can.packed else None
    fused = clip_max if can.fused_clip else None
    clip = {} if fused is None else {"clip_max": fused}
    if not can.runs_plan:
        kernels.conv2d(x, weight, bias, p, None, target, 0, relu, **clip)
    elif plan.algorithm == "gemm":
        _conv_as_gemm(kernels.gemm, x, weight, bias, p, target, relu, packed, fused,
                      residual is not None)
    elif packed is not None:
        kernels.conv2d(x, weight, bias, p, plan.kernel, target, plan.workspace_bytes, relu,
                       packed=packed.conv(plan.kernel, p.groups, p.layout), **clip)
    else:
        kernels.conv2d(x, weight, bias, p, plan.kernel, target, plan.workspace_bytes, relu,
                       **clip)
    _args.apply_activation(target, False if slope is None else slope,
                           None if fused is not None else clip_max,
                           1 if p.layout == "NCHW" else 3)
    return _finish(target, out)


def _writable(out, shape, dtype, inputs):
    """The array a prepared call writes: out itself, or a fresh one for
    out=None; None where out is not one the kernels may write directly (the
    general path then handles it, errors included)."""
    if out is None:
        return np.empty(shape, dtype)
    if type(out) is np.ndarray and out.shape == shape and out.dtype == dtype \
            and out.flags.c_contiguous and out.flags.writeable and \
            not any(np.may_share_memory(out, a) for a in inputs):
        return out
    return None


class PreparedCall:
    """One call of a layer (run_conv2d or linear on a PackedWeight) made
    again on other arrays of the same shapes, dtypes and strides without its
    Python work: no validation, planning or argument structs, only the
    backend's recorded calls (its `prepare`, fastconv.backends.c.Prepared)
    and, for a residual, its copy into the output.  Made by prepare_conv2d /
    prepare_linear."""
    __slots__ = ("_run", "_shape", "_dtype", "_constants")

    def __init__(self, run, shape, dtype, constants):
        self._run, self._shape, self._dtype, self._constants = run, shape, dtype, constants

    def __call__(self, x, out=None, residual=None):
        """The result, or None where `out` is not one the call may write."""
        target = _writable(out, self._shape, self._dtype, (x,) + self._constants)
        if target is None:
            return None
        if residual is not None and target is not residual:
            np.copyto(target, residual)  # the GEMM adds into it (accumulate)
        self._run(x, target)
        return target


def state_key(be: str) -> tuple:
    """What a prepared call depends on besides its arrays and arguments: the
    backend, its thread count, the Winograd switch and the kernels' ISA (a
    backend that has one)."""
    isa = getattr(_backend(be), "isa", None)
    return be, get_num_threads(), get_winograd(), isa() if isa else None


def array_key(arr):
    """The part of an array's identity a prepared call depends on, or None."""
    if arr is None:
        return None
    return arr.shape, arr.dtype, arr.strides, arr.flags.aligned


def _constants(packed):
    return tuple(a for a in (packed.weight, packed.bias) if a is not None)


def _prepare(run, x, target, packed, be):
    """run() with the backend recording its calls, if it can (its `prepare`)."""
    prepare = getattr(_backend(be), "prepare", None)
    if prepare is None:
        return run(), None
    y, calls = prepare(run, x, target, _constants(packed))
    if calls is None or y is not target:
        return y, None
    return y, PreparedCall(calls, target.shape, target.dtype, _constants(packed))


def prepare_conv2d(x, packed, p, algorithm, be, relu=False, negative_slope=None, out=None,
                   clip_max=None, residual=None):
    """run_conv2d(x, packed's weight and bias, p, ...) -> (its result, a
    PreparedCall that repeats it on arrays like x, out and residual, or None
    where the call does Python-side work a replay would skip, or False where
    this call could not tell: an `out` the kernels cannot write directly)."""
    run = lambda target: run_conv2d(x, packed.weight, packed.bias, p, packed, algorithm, be,
                                    relu=relu, negative_slope=negative_slope, out=target,
                                    clip_max=clip_max, residual=residual)
    target = _writable(out, p.out_shape, x.dtype, (x,) + _constants(packed))
    if target is None:
        return run(out), False
    if residual is not None and type(residual) is not np.ndarray:
        return run(target), None
    return _prepare(lambda: run(target), x, target, packed, be)


def prepare_linear(x, packed, be, relu=False, negative_slope=None, clip_max=None):
    """linear(x, packed, ...) -> (its result, a PreparedCall repeating it, or
    None); x an ndarray of 1 or 2 dimensions."""
    shape = x.shape[:-1] + (packed.weight.shape[0],)
    target = np.empty(shape, x.dtype)
    run = lambda: linear(x, packed, backend=be, out=target, relu=relu,
                         negative_slope=negative_slope, clip_max=clip_max)
    return _prepare(run, x, target, packed, be)


def _conv_as_gemm(gemm, x, weight, bias, p, y, relu, packed=None, clip_max=None,
                  accumulate=False):
    """Run a full-size or 1x1 conv as the GEMM it is (see fastconv.lower);
    packed: the PackedWeight of weight (C backend), or None; clip_max: the
    store's clamp (fused_clip), or None; accumulate: add into y (a residual)."""
    if p.is_full_size:
        # An FC layer: y[N, K] = x[N, C*H*W] @ weight[K, C*H*W].T -- the very
        # call linear() makes, so the two agree bit for bit.
        xm = x.reshape(p.n, -1) if p.layout == "NCHW" else x.transpose(0, 3, 1, 2).reshape(p.n, -1)
        _gemm(gemm, xm, weight.reshape(p.k, -1).T, y.reshape(p.n, p.k), bias, 1, relu, packed,
              ("b", 0), clip_max, accumulate)
        return
    cg, kg = p.c // p.groups, p.k // p.groups
    for g in range(p.groups):
        wg = weight[g * kg:(g + 1) * kg].reshape(kg, cg)
        bg = None if bias is None else bias[g * kg:(g + 1) * kg]
        act = relu[g * kg:(g + 1) * kg] if isinstance(relu, np.ndarray) else relu
        key = (lower.WEIGHT_SIDE[p.layout], g, p.groups)
        if p.layout == "NHWC":  # the whole batch at once: the pixels x[NHW, C] are the patches
            xm = x[..., g * cg:(g + 1) * cg].reshape(-1, cg)
            views = [(xm, y.reshape(-1, p.k)[:, g * kg:(g + 1) * kg])]
        else:                   # per image: the patches are x[n][C, HW]
            views = [(x[n, g * cg:(g + 1) * cg].reshape(cg, -1),
                      y[n, g * kg:(g + 1) * kg].reshape(kg, -1)) for n in range(p.n)]
        for xm, yg in views:
            a, b, bias_axis = lower.group_gemm(p.layout, wg, xm)
            _gemm(gemm, a, b, yg, bg, bias_axis, act, packed, key, clip_max, accumulate)
