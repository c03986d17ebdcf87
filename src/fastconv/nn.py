"""Inference layers on fastconv's kernels.

Layers hold NumPy weights and run on the configured backend
(`fastconv.set_backend(...)` or `with fastconv.config(backend=...)`).  Inputs
are batches: (N, C, H, W) for image layers, (N, features) for Linear.
`Sequential` passes a ReLU that follows a Conv2d or Linear to that layer's
kernel, which applies bias and ReLU as it stores each output.

`to_fully_convolutional` rewrites a classifier's FC head as convolutions so
the network takes any input size and returns a map of outputs; `summary`
reports each layer's output shape, parameters and FLOPs.

Networks that are not a chain are `Graph`s (graph.py); the layers they need
(BatchNorm2d, Add, Concat, LRN, general pools, shape ops) are in layers.py,
and `compress_fc` in compress.py.  All of them are importable from here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _args, api, lower, pool
from .convert import fc_to_conv
from .config import resolve_backend
from .packed import PackedWeight


class Lazy:
    """A weight array made on first use (large seeded weights cost nothing
    until a layer actually runs).  `make()` must return an array of `shape`."""

    def __init__(self, shape, dtype, make):
        self.shape, self.dtype, self._make = tuple(shape), np.dtype(dtype), make

    def materialize(self) -> np.ndarray:
        arr = np.ascontiguousarray(self._make(), self.dtype)
        if arr.shape != self.shape:
            raise ValueError(f"lazy weight made shape {arr.shape}; expected {self.shape}")
        return arr


def _float_weight(name, value, ndim, what):
    if isinstance(value, Lazy):
        shape = value.shape
    else:
        value = _args.float_array(name, value)
        shape = value.shape
    if len(shape) != ndim:
        raise ValueError(f"{name} must be {ndim}-D {what}; got shape {shape}")
    return value


def _shape_only(shape, dtype=np.float32):
    """A zero-byte array of `shape`, for running argument validation on shapes."""
    return lower.shaped_like("input_shape", shape, dtype)


def _input(layer, x, what="", ndim=None, min_ndim=0, ints=False, dtype=None) -> np.ndarray:
    """x as an ndarray `layer` takes, checked as conv2d checks its input: any
    array-like (fastconv._args), float32/float64 (and integers where the
    layer is exact on them, as in torch), its rank, and at least one channel
    for image layers.  An empty batch passes.  Python lists, which have no
    dtype of their own, take `dtype` (a weighted layer's)."""
    name = type(layer).__name__
    if dtype is not None and isinstance(x, (list, tuple)):
        x = _args.as_array("x", x)
        if x.dtype.kind in "iuf":
            x = x.astype(dtype)
    try:
        x = _args.float_array("x", x, ints=ints)
    except TypeError as e:
        integer = getattr(getattr(x, "dtype", None), "kind", None) in ("i", "u")
        hint = "; cast integer input with x.astype(np.float32)" if integer and not ints else ""
        raise TypeError(f"{name}: {e}{hint}") from None
    if (ndim is not None and x.ndim != ndim) or x.ndim < min_ndim:
        raise ValueError(f"{name} takes {what}; got shape {x.shape}")
    if ndim == 4 and x.shape[1] == 0:
        raise ValueError(f"{name} needs at least one channel; got shape {x.shape}")
    return x


def _sample_shape(layer, shape, ndim, what) -> tuple:
    """A per-sample shape (no batch dimension) of `ndim` entries, for output_shape/flops."""
    shape = _args.shape("input_shape", shape)
    if len(shape) != ndim:
        raise ValueError(f"{type(layer).__name__} takes a per-sample shape {what} (no batch "
                         f"dimension); got {shape}")
    return shape


class Module:
    """A layer: call it on a batch.  output_shape/params/flops take and give
    per-sample shapes (no batch dimension)."""

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        raise NotImplementedError

    def output_shape(self, shape: tuple) -> tuple:
        return tuple(shape)

    def params(self) -> int:
        return 0

    def flops(self, shape: tuple) -> int:
        """Multiply-adds x 2 for one sample of `shape` (0 for layers without a GEMM)."""
        return 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _Weighted(Module):
    def __init__(self, weight, bias):
        self._weight = weight
        k = weight.shape[0]
        if bias is not None and not isinstance(bias, Lazy):
            bias = _args.bias_array(bias, k, weight.dtype, f"weight's {k} outputs")
        self._bias = bias

    @property
    def weight(self) -> np.ndarray:
        if isinstance(self._weight, Lazy):
            self._weight = self._weight.materialize()
        return self._weight

    @property
    def bias(self) -> np.ndarray | None:
        if isinstance(self._bias, Lazy):
            self._bias = self._bias.materialize()
        return self._bias

    @property
    def weight_shape(self) -> tuple:
        return tuple(self._weight.shape)

    def params(self) -> int:
        n = int(np.prod(self.weight_shape))
        return n + (0 if self._bias is None else self.weight_shape[0])

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_calls", None)   # prepared C calls hold this process's pointers
        return state

    def packed(self) -> PackedWeight:
        """weight and bias packed for the kernels, made at the first call and
        kept while the layer keeps the same weight and bias arrays."""
        w, b = self.weight, self.bias
        packed_from = getattr(self, "_packed", None)  # (weight, bias, their PackedWeight)
        if packed_from is None or packed_from[0] is not w or packed_from[1] is not b:
            packed_from = self._packed = (w, b, PackedWeight(w, b))
        return packed_from[2]


class Conv2d(_Weighted):
    """conv2d with fixed weight (K, C/groups, kh, kw) and optional bias (K,)."""
    _calls = None   # (PackedWeight, {input key: ConvParams}, {call key: PreparedCall}), see forward

    def __init__(self, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                 algorithm="auto"):
        weight = _float_weight("weight", weight, 4, "(K, C/groups, kh, kw)")
        super().__init__(weight, bias)
        # Check what can be checked without an input (its shape is checked per call).
        k, _, kh, kw = weight.shape
        if not _args._is_int(groups) or groups < 1 or k % groups:
            raise ValueError(f"groups must be a positive int dividing K={k}; got {groups!r}")
        _args.choice("algorithm", algorithm, _args.ALGORITHMS)
        _args.padding4(padding, kh, kw, _args.pair("dilation", dilation, 1),
                       _args.pair("stride", stride, 1))
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.groups, self.algorithm = groups, algorithm

    def forward(self, x, relu=False, negative_slope=None, out=None, clip_max=None,
                residual=None):
        x = _input(self, x, dtype=self.weight.dtype)
        packed = self.packed()
        be = resolve_backend(None)
        calls = self._calls
        if calls is None or calls[0] is not packed:
            calls = self._calls = (packed, {}, {})
        # A call is validated once per input shape and dtype, and planned with
        # its C arguments filled once per call key (the input's strides, the
        # epilogue, the backend's state too); later calls only set addresses.
        try:
            key = (x.shape, x.dtype, self.stride, self.padding, self.dilation, self.groups,
                   self.algorithm)
            call_key = (key, x.strides, x.flags.aligned, relu, negative_slope, clip_max,
                        api.array_key(residual) if type(residual) is np.ndarray else residual,
                        api.state_key(be))
            call = calls[2].get(call_key)
        except TypeError:   # an unhashable setting (a list): validate every call
            key = call_key = call = None
        if call is not None:
            y = call(x, out, residual)
            if y is not None:
                return y
        p = calls[1].get(key) if key is not None else None
        if p is None:
            _args.choice("algorithm", self.algorithm, _args.ALGORITHMS)
            _, _, _, p = _args.conv2d_args(x, packed.weight, packed.bias, self.stride,
                                           self.padding, self.dilation, self.groups, "NCHW")
            if key is not None:
                calls[1][key] = p
        if call_key is not None and call_key not in calls[2]:
            y, call = api.prepare_conv2d(x, packed, p, self.algorithm, be, relu,
                                         negative_slope, out, clip_max, residual)
            if call is not False:
                calls[2][call_key] = call
            return y
        return api.run_conv2d(x, packed.weight, packed.bias, p, packed, self.algorithm, be,
                              relu=relu, negative_slope=negative_slope, out=out,
                              clip_max=clip_max, residual=residual)

    def _params(self, shape):
        x = _shape_only((1,) + _sample_shape(self, shape, 3, "(C, H, W)"))
        return _args.conv2d_args(x, _shape_only(self.weight_shape), None, self.stride,
                                 self.padding, self.dilation, self.groups, "NCHW")[3]

    def output_shape(self, shape):
        return self._params(shape).out_shape[1:]

    def flops(self, shape):
        return self._params(shape).flops

    def __repr__(self):
        k, cg, kh, kw = self.weight_shape
        extra = "".join(f", {name}={getattr(self, name)!r}" for name, default in
                        (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1))
                        if getattr(self, name) != default)
        return f"Conv2d({cg * self.groups}\u2192{k}, {kh}\u00d7{kw}{extra})"


class Linear(_Weighted):
    """linear with fixed weight (out_features, in_features) and optional bias."""

    def __init__(self, weight, bias=None):
        weight = _float_weight("weight", weight, 2, "(out_features, in_features)")
        super().__init__(weight, bias)

    def forward(self, x, relu=False, negative_slope=None, clip_max=None):
        x = _input(self, x, dtype=self.weight.dtype)
        packed = self.packed()
        be = resolve_backend(None)
        if x.ndim not in (1, 2):
            return api.linear(x, packed, relu=relu, negative_slope=negative_slope,
                              clip_max=clip_max)
        # Prepared once per key, as Conv2d's calls.
        try:
            key = (api.array_key(x), relu, negative_slope, clip_max, api.state_key(be))
            hash(key)
        except TypeError:
            key = None
        calls = self.__dict__.get("_calls")
        if calls is None or calls[0] is not packed:
            calls = self._calls = (packed, {})
        call = calls[1].get(key, False) if key is not None else None
        if call:
            y = call(x)
            if y is not None:
                return y
        if call is False:
            y, calls[1][key] = api.prepare_linear(x, packed, be, relu, negative_slope, clip_max)
            return y
        return api.linear(x, packed, relu=relu, negative_slope=negative_slope,
                          clip_max=clip_max)

    def output_shape(self, shape):
        if _args.shape("input_shape", shape) != (self.weight_shape[1],):
            raise ValueError(f"Linear expects ({self.weight_shape[1]},) features per sample; "
                             f"got {tuple(shape)} (put a Flatten before it)")
        return (self.weight_shape[0],)

    def flops(self, shape):
        return 2 * self.weight_shape[0] * self.weight_shape[1]

    def __repr__(self):
        return f"Linear({self.weight_shape[1]}\u2192{self.weight_shape[0]})"


class ReLU(Module):
    """max(x, 0); exact on integer input, which keeps its dtype (as torch's)."""

    def forward(self, x):
        x = _input(self, x, ints=True)
        return np.maximum(x, x.dtype.type(0))


class PReLU(Module):
    """ReLU with a learned slope per channel (axis 1) for negative inputs."""

    def __init__(self, slope):
        self.slope = _args.float_array("slope", slope)
        if self.slope.ndim != 1 or self.slope.size == 0:
            raise ValueError(f"slope must be 1-D (channels,) with at least one entry; "
                             f"got shape {self.slope.shape}")

    def _check_channels(self, c, shape):
        # As torch: one slope serves every channel; otherwise one per channel, exactly.
        if self.slope.size not in (1, c):
            raise ValueError(f"PReLU has {self.slope.size} slopes (one per channel) but its "
                             f"input has {c} channels; shape {shape}")

    def forward(self, x):
        x = _input(self, x, "(N, C, ...)", min_ndim=2)
        self._check_channels(x.shape[1], x.shape)
        # PReLU is max(x, a*x) where a <= 1 and min(x, a*x) where a > 1: branch-free,
        # many times faster than np.where's select on mixed signs.
        a = self.slope.astype(x.dtype).reshape((-1,) + (1,) * (x.ndim - 2))
        y = x * a
        np.maximum(x, y, out=y)
        steep = self.slope > 1
        if steep.any():
            ch = slice(None) if self.slope.size == 1 else np.flatnonzero(steep)
            y[:, ch] = np.minimum(x[:, ch], x[:, ch] * a[ch])
        return y

    def output_shape(self, shape):
        shape = _args.shape("input_shape", shape)
        if shape:
            self._check_channels(shape[0], shape)
        return shape

    def params(self):
        return self.slope.size

    def __repr__(self):
        return f"PReLU({self.slope.size})"


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        self.kernel_size = _args.pair("kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else _args.pair("stride", stride, 1)
        self.padding = _args.pair("padding", padding, 0)
        _args.pool_padding(self.padding, self.kernel_size, (1, 1), self.stride)
        self.ceil_mode = _args.flag("ceil_mode", ceil_mode)

    def _pool(self, x, what, mode):
        """Float x pooled by fastconv.pool's kernels, its validated PoolParams
        kept per input shape (pool.params_for): no argument work per call."""
        x, p = pool.params_for(
            self.__dict__.setdefault("_checked", {}), x,
            lambda x: _args.pool2d_args(what, x, self.kernel_size, self.stride, self.padding, 1,
                                        self.ceil_mode, mode))
        return pool.run_pool2d(x, p, resolve_backend(None))

    def _out(self, size, k, s, p):
        return _args._pool_extent(type(self).__name__, size, k, 1, s, p, p, self.ceil_mode)

    def output_shape(self, shape):
        c, h, w = _sample_shape(self, shape, 3, "(C, H, W)")
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (c, self._out(h, kh, sh, ph), self._out(w, kw, sw, pw))

    def _windows(self, x, fill):
        """Yield, per kernel tap, the (N, C, OH, OW) strided view that tap sees."""
        _, oh, ow = self.output_shape(x.shape[1:])
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        extra_h = max(0, (oh - 1) * sh + kh - x.shape[2] - 2 * ph)
        extra_w = max(0, (ow - 1) * sw + kw - x.shape[3] - 2 * pw)
        if ph or pw or extra_h or extra_w:
            x = np.pad(x, ((0, 0), (0, 0), (ph, ph + extra_h), (pw, pw + extra_w)),
                       constant_values=fill)
        for i in range(kh):
            for j in range(kw):
                yield x[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]

    def __repr__(self):
        return (f"{type(self).__name__}({self.kernel_size[0]}\u00d7{self.kernel_size[1]}, "
                f"stride={self.stride[0]})")


class MaxPool2d(_Pool2d):
    """Max over kh x kw windows (padding counts as -inf, or the integer dtype's minimum),
    PyTorch semantics; exact on integers, which keep their dtype."""

    def forward(self, x):
        x = _input(self, x, "(N, C, H, W)", ndim=4, ints=True)
        if x.dtype.kind == "f":
            return self._pool(x, "max_pool2d", "max")
        if self.padding == (0, 0):
            return self._unpadded(x)
        # Padding never wins a window (each holds an input pixel); integers are exact.
        fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        taps = self._windows(x, fill)
        y = next(taps).copy()
        for t in taps:
            np.maximum(y, t, out=y)
        return y

    def _unpadded(self, x):
        """Without padding: the max over rows, then over columns (max is separable;
        kh + kw passes instead of kh * kw), each tap updating the outputs it reaches,
        so ceil_mode's partial last windows need no -inf padded copy."""
        _, oh, ow = self.output_shape(x.shape[1:])
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        return _max_taps(_max_taps(x, kh, sh, oh, 2), kw, sw, ow, 3)


def _max_taps(x, k: int, s: int, size: int, axis: int):
    """y[o] = max over i < k of x[o*s + i] along `axis`, for o < size; taps past
    the end of x are skipped."""
    def along(index):
        return (slice(None),) * axis + (index,)
    y = x[along(slice(0, None, s))][along(slice(0, size))].copy()
    for i in range(1, k):
        tap = x[along(slice(i, None, s))][along(slice(0, size))]
        part = y[along(slice(0, tap.shape[axis]))]
        np.maximum(part, tap, out=part)
    return y


class AvgPool2d(_Pool2d):
    """Mean over kh x kw windows; zero padding counts in the mean (PyTorch's default),
    the part of a ceil_mode window past the padding does not.  Integer input is a
    TypeError: torch refuses it too, except int64, whose means it truncates."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__(kernel_size, stride, padding, ceil_mode)

    def forward(self, x):
        x = _input(self, x, "(N, C, H, W)", ndim=4)
        return self._pool(x, "avg_pool2d", "avg")


class GlobalAvgPool2d(Module):
    """Mean over each channel's whole map: (N, C, H, W) -> (N, C, 1, 1)."""

    def forward(self, x):
        x = _input(self, x, "(N, C, H, W)", ndim=4)  # integers refused, as torch's mean
        if x.shape[2] * x.shape[3] == 0:  # the mean of nothing, as torch: NaN
            return np.full(x.shape[:2] + (1, 1), np.nan, x.dtype)
        return pool.global_avg_pool2d(x)

    def output_shape(self, shape):
        return (_sample_shape(self, shape, 3, "(C, H, W)")[0], 1, 1)


class Flatten(Module):
    """(N, ...) -> (N, features), in C order (channels, then rows, then columns)."""

    def forward(self, x):
        x = _input(self, x, "(N, ...)", min_ndim=2, ints=True)
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))  # -1 is ambiguous for N = 0

    def output_shape(self, shape):
        return (math.prod(_args.shape("input_shape", shape)),)


class Softmax(Module):
    """Softmax over axis 1: the classes of (N, classes) or the channels of (N, C, H, W)."""

    def forward(self, x):
        x = _input(self, x, "(N, C, ...)", min_ndim=2)
        if x.shape[1] == 0:
            return x.copy()
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def run_chain(layers, x):
    """x through `layers` in order; a ReLU or PReLU right after a Conv2d or
    Linear runs in that layer's kernel store (one pass over the output, not two)."""
    i = 0
    while i < len(layers):
        layer = layers[i]
        after = layers[i + 1] if i + 1 < len(layers) else None
        if not isinstance(layer, (Conv2d, Linear)) or type(after) not in (ReLU, PReLU):
            x = layer(x)
            i += 1
            continue
        if type(after) is ReLU:
            x = layer.forward(x, relu=True)
        else:
            k = layer.weight_shape[0]
            after._check_channels(k, f"(N, {k}, ...)")
            x = layer.forward(x, negative_slope=after.slope)
        i += 2
    return x


class Sequential(Module):
    """Layers applied in order.  A ReLU or PReLU right after a Conv2d or Linear
    runs inside that layer's kernel (one pass over the output, not two)."""

    def __init__(self, *layers, input_shape=None):
        for layer in layers:
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential takes Module layers; got {type(layer).__name__}")
        self.layers = list(layers)
        self.input_shape = None if input_shape is None else _args.shape("input_shape",
                                                                        input_shape)

    def check_input_shape(self, shape, got=None) -> tuple:
        """`shape` (one sample's, no batch dimension) if it is the declared input_shape."""
        shape = _args.shape("input_shape", shape)
        if self.input_shape is not None and shape != self.input_shape:
            got = f"x of shape {got}" if got is not None else f"input_shape {shape}"
            raise ValueError(f"this Sequential declares input_shape {self.input_shape} per "
                             f"sample (batches of (N,) + {self.input_shape}); got {got}")
        return shape

    def __iter__(self):
        return iter(self.layers)

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def forward(self, x):
        if self.input_shape is not None:  # x itself goes on: a list takes the weights' dtype
            shape = tuple(x.shape) if hasattr(x, "shape") else _args.as_array("x", x).shape
            self.check_input_shape(shape[1:], shape)
        return run_chain(self.layers, x)

    def output_shape(self, shape):
        shape = self.check_input_shape(shape)
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    def params(self):
        return sum(layer.params() for layer in self.layers)

    def flops(self, shape):
        shape = self.check_input_shape(shape)
        total = 0
        for layer in self.layers:
            total += layer.flops(shape)
            shape = layer.output_shape(shape)
        return total

    def __repr__(self):
        return "Sequential(\n" + "".join(f"  {layer!r},\n" for layer in self.layers) + ")"


def to_fully_convolutional(model: Sequential, input_shape) -> Sequential:
    """The same network with its FC head as convolutions, for any input size.

    The first Linear after a Flatten becomes a Conv2d whose kernel is the whole
    C x H x W map it used to flatten (fc_to_conv); every later Linear becomes a
    1x1 Conv2d.  Softmax then runs over channels, so on a larger input the
    result is an (N, classes, OH, OW) map: one classification per window
    position.  At `input_shape` itself the output is (N, classes, 1, 1) and
    equals the original's.  Weights are shared with `model`, not copied.
    """
    if isinstance(model, Graph):
        return model.to_fully_convolutional(input_shape)
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a Sequential or a Graph; got {type(model).__name__}")
    shape = model.check_input_shape(input_shape)
    layers, flat_from = [], None
    for layer in model.layers:
        if isinstance(layer, Flatten):
            if flat_from is not None:
                raise ValueError("to_fully_convolutional: two Flatten layers")
            flat_from = shape
        elif isinstance(layer, Linear):
            if flat_from is None:
                raise ValueError(f"to_fully_convolutional: {layer!r} does not follow a Flatten")
            if flat_from == ():
                chw = (shape[0], 1, 1)
            elif len(flat_from) == 3:
                chw = flat_from
            else:
                raise ValueError(f"to_fully_convolutional: Flatten before {layer!r} takes a "
                                 f"{flat_from} input, not a (C, H, W) map")
            layers.append(Conv2d(_as_conv_weight(layer, chw), layer._bias))
            flat_from = ()  # later Linears see a vector: 1x1 convs
        elif flat_from is not None and not isinstance(layer, (ReLU, PReLU, Softmax)):
            raise ValueError(f"to_fully_convolutional: cannot convert {layer!r} after Flatten")
        else:
            layers.append(layer)
        shape = layer.output_shape(shape)
    if flat_from is None:
        raise ValueError("to_fully_convolutional: model has no Flatten; it already is one")
    return Sequential(*layers)


def _as_conv_weight(linear: Linear, chw):
    """fc_to_conv of a Linear's weight; still lazy if the weight is not made yet."""
    if isinstance(linear._weight, Lazy):
        return Lazy((linear.weight_shape[0],) + tuple(chw), linear._weight.dtype,
                    lambda: fc_to_conv(linear.weight, chw))
    return fc_to_conv(linear.weight, chw)


@dataclass(frozen=True)
class LayerInfo:
    index: int
    layer: str
    output_shape: tuple
    params: int
    flops: int
    is_fc: bool


@dataclass(frozen=True)
class Summary:
    """Per-layer output shapes, parameters and FLOPs for one input shape."""
    input_shape: tuple
    rows: tuple

    @property
    def params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def fc_params(self) -> int:
        return sum(r.params for r in self.rows if r.is_fc)

    @property
    def fc_share(self) -> float:
        return self.fc_params / self.params if self.params else 0.0

    @property
    def flops(self) -> int:
        return sum(r.flops for r in self.rows)

    def __str__(self) -> str:
        total = max(self.params, 1)
        lines = [f"input {'x'.join(map(str, self.input_shape))}",
                 f"{'#':>3}  {'layer':<30} {'output':>14} {'params':>12} {'share':>7} "
                 f"{'MFLOP':>9}"]
        for r in self.rows:
            lines.append(f"{r.index:>3}  {r.layer:<30} {'x'.join(map(str, r.output_shape)):>14} "
                         f"{r.params:>12,} {100 * r.params / total:>6.1f}% "
                         f"{r.flops / 1e6:>9.2f}")
        lines.append(f"total {self.params:,} params, {self.flops / 1e6:,.1f} MFLOP per sample; "
                     f"FC layers hold {self.fc_params:,} ({100 * self.fc_share:.1f}%)")
        return "\n".join(lines)


def summary(model, input_shape) -> Summary:
    """Each layer's output shape, parameter count, share of all parameters and
    FLOPs for one sample of `input_shape` (C, H, W); Linear layers count as FC."""
    if isinstance(model, Graph):
        return Summary(tuple(input_shape), model.summary_rows(tuple(input_shape)))
    layers = model.layers if isinstance(model, Sequential) else getattr(model, "layers", None)
    if layers is None:
        raise TypeError(f"summary needs a model with .layers; got {type(model).__name__}")
    if isinstance(model, Sequential):
        model.check_input_shape(input_shape)
    shape, rows = _args.shape("input_shape", input_shape), []
    for i, layer in enumerate(layers):
        flops = layer.flops(shape)
        shape = layer.output_shape(shape)
        rows.append(LayerInfo(i, repr(layer), shape, layer.params(), flops,
                              isinstance(layer, Linear)))
    return Summary(tuple(input_shape), tuple(rows))


# Layers for graphs and the Graph itself live in their own modules; they are part of nn.
from .layers import (Add, AveragePool, AxisSoftmax, BatchNorm2d, Cast, Clip, Concat,  # noqa: E402
                     ConstantOfShape, Div, Dropout, Gather, GlobalMaxPool2d, HardSigmoid,
                     HardSwish, Identity, LeakyReLU, LRN, MatMul, MaxPool, Mul, Pad, Reshape,
                     Shape, Sigmoid, Slice, Squeeze, Sub, Transpose, Unsqueeze)
from .graph import Graph, Node  # noqa: E402
from .compress import compress_fc  # noqa: E402
