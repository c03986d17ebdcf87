"""More inference layers: the ones real networks (and their ONNX files) need.

Re-exported from `fastconv.nn`; the conventions are nn's.  Layers that take
several inputs (Add, Concat, ...) are called with them positionally.  Axis
arguments count the batch axis (axis 1 is channels of an (N, C, H, W) batch),
as in NumPy and ONNX; `output_shape` still takes and gives per-sample shapes.
The shape layers (Shape, Gather, Slice, Cast, Unsqueeze, ...) also work on
small integer arrays, which is how a graph computes shapes at run time.
"""
from __future__ import annotations

import numpy as np

from . import _args, pool
from .config import resolve_backend
from .nn import Module, _shape_only


def _per_sample(fn, *shapes):
    """Apply `fn`, which maps full shapes (with a batch of 1), to per-sample shapes."""
    out = fn(*[(1,) + tuple(s) for s in shapes])
    if not out or out[0] != 1:
        raise ValueError(f"output shape {out} does not keep the batch axis first")
    return tuple(out[1:])


def _float_input(name, x, ndim=None):
    x = _args.float_array(name, x)
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {x.shape}")
    return x


def _vector(name, value, length=None):
    v = _args.float_array(name, value)
    if v.ndim != 1 or (length is not None and v.shape[0] != length):
        want = "1-D" if length is None else f"shape ({length},)"
        raise ValueError(f"{name} must be {want}; got shape {v.shape}")
    return v


def _axis(name, axis, ndim):
    if not _args._is_int(axis) or not -ndim <= axis < ndim:
        raise ValueError(f"{name} must be an int in [{-ndim}, {ndim}); got {axis!r} "
                         f"for a {ndim}-D input")
    return int(axis) % ndim


class Identity(Module):
    """Returns its input (Dropout at inference is this too)."""

    def forward(self, x):
        return x


Dropout = Identity


class BatchNorm2d(Module):
    """Inference batch norm over channels: (x - mean) / sqrt(var + eps) * scale + bias."""

    def __init__(self, scale, bias, mean, var, eps=1e-5):
        self.scale = _vector("scale", scale)
        c = self.scale.shape[0]
        self.bias, self.mean = _vector("bias", bias, c), _vector("mean", mean, c)
        self.var = _vector("var", var, c)
        if not np.isfinite(eps) or eps < 0:
            raise ValueError(f"eps must be a finite number >= 0; got {eps!r}")
        if np.any(self.var + eps <= 0):
            raise ValueError("var + eps must be positive in every channel")
        self.eps = float(eps)

    def affine(self, dtype=np.float64):
        """(a, b) with batch_norm(x) == a * x + b per channel."""
        a = self.scale.astype(np.float64) / np.sqrt(self.var.astype(np.float64) + self.eps)
        b = self.bias.astype(np.float64) - a * self.mean.astype(np.float64)
        return a.astype(dtype), b.astype(dtype)

    def forward(self, x):
        x = _float_input("x", x)
        if x.ndim < 2 or x.shape[1] != self.scale.shape[0]:
            raise ValueError(f"BatchNorm2d has {self.scale.shape[0]} channels; got input "
                             f"shape {x.shape}")
        a, b = self.affine(x.dtype)
        tail = (1,) * (x.ndim - 2)
        return x * a.reshape((-1,) + tail) + b.reshape((-1,) + tail)

    def params(self):
        return 4 * self.scale.shape[0]

    def __repr__(self):
        return f"BatchNorm2d({self.scale.shape[0]})"


class _Elementwise(Module):
    """A unary function of each value."""

    def forward(self, x):
        return self.fn(_float_input("x", x))


class LeakyReLU(_Elementwise):
    def __init__(self, alpha=0.01):
        self.alpha = float(alpha)

    def fn(self, x):
        return np.where(x >= 0, x, x * x.dtype.type(self.alpha))

    def __repr__(self):
        return f"LeakyReLU({self.alpha})"


class Sigmoid(_Elementwise):
    def fn(self, x):
        return 1 / (1 + np.exp(-x))


class HardSigmoid(_Elementwise):
    """max(0, min(1, alpha * x + beta)) (ONNX's defaults)."""

    def __init__(self, alpha=0.2, beta=0.5):
        self.alpha, self.beta = float(alpha), float(beta)

    def fn(self, x):
        t = x.dtype.type
        return np.clip(x * t(self.alpha) + t(self.beta), 0, 1)


class HardSwish(_Elementwise):
    """x * max(0, min(1, x / 6 + 1/2))."""

    def fn(self, x):
        return x * np.clip(x / x.dtype.type(6) + x.dtype.type(0.5), 0, 1)


class Clip(_Elementwise):
    """min(max(x, low), high); either bound may be None."""

    def __init__(self, low=None, high=None):
        self.low = None if low is None else float(low)
        self.high = None if high is None else float(high)
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"Clip: low {low} is above high {high}")

    def fn(self, x):
        return np.clip(x, self.low, self.high)

    def __repr__(self):
        return f"Clip({self.low}, {self.high})"


class LRN(Module):
    """Local response normalisation across channels (AlexNet's; ONNX semantics):
    y = x / (bias + alpha / size * sum of x^2 over `size` neighbouring channels)^beta."""

    def __init__(self, size, alpha=1e-4, beta=0.75, bias=1.0):
        if not _args._is_int(size) or size < 1:
            raise ValueError(f"size must be a positive int; got {size!r}")
        self.size, self.alpha, self.beta, self.bias = int(size), float(alpha), float(beta), \
            float(bias)

    def forward(self, x):
        x = _float_input("x", x, 4)
        sq = np.square(x)
        before, after = (self.size - 1) // 2, self.size // 2
        c = x.shape[1]
        # Running sum over channels: window [c - before, c + after], clipped to the input.
        cs = np.concatenate([np.zeros_like(sq[:, :1]), np.cumsum(sq, axis=1, dtype=np.float64)],
                            axis=1)
        hi = np.minimum(np.arange(c) + after + 1, c)
        lo = np.maximum(np.arange(c) - before, 0)
        window = (cs[:, hi] - cs[:, lo]).astype(x.dtype)
        return x / (self.bias + self.alpha / self.size * window) ** x.dtype.type(self.beta)

    def __repr__(self):
        return f"LRN(size={self.size})"


class _Binary(Module):
    """An elementwise op on two arrays with NumPy broadcasting."""
    op = None

    def forward(self, a, b):
        return self.op(np.asarray(a), np.asarray(b))

    def output_shape(self, a, b):
        return _broadcast_per_sample(a, b)


def _broadcast_per_sample(*shapes):
    """Broadcast per-sample shapes; constants are given as ndarrays (no batch axis)."""
    full = []
    for s in shapes:
        if isinstance(s, np.ndarray):
            full.append(s.shape)           # a constant broadcasts against the batch too
        else:
            full.append((1,) + tuple(s))
    try:
        out = np.broadcast_shapes(*full)
    except ValueError as e:
        raise ValueError(f"shapes {[tuple(s) for s in full]} do not broadcast: {e}") from None
    return tuple(out[1:])


class Add(_Binary):
    """Sum of any number of inputs, NumPy broadcasting (ONNX Add and Sum).
    relu=True clamps the sum at 0 (a residual block's ReLU); out: an array of
    the sum's shape and dtype to write it into (it may be one of the inputs)."""

    def forward(self, *xs, relu=False, out=None):
        if not xs:
            raise ValueError("Add needs at least one input")
        xs = [np.asarray(x) for x in xs]
        if out is not None and len(xs) == 2:
            y = np.add(xs[0], xs[1], out=out)
        else:
            y = xs[0]
            for x in xs[1:]:
                y = y + x
            if out is not None:
                np.copyto(out, y)
                y = out
            elif relu and len(xs) == 1:
                y = y.copy()
        if relu:
            np.maximum(y, y.dtype.type(0), out=y)
        return y

    def output_shape(self, *shapes):
        return _broadcast_per_sample(*shapes)


class Sub(_Binary):
    op = staticmethod(np.subtract)


class Mul(_Binary):
    op = staticmethod(np.multiply)


class Div(_Binary):
    """a / b; integers divide truncating toward zero (ONNX)."""

    def forward(self, a, b):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype.kind in "iu" and b.dtype.kind in "iu":
            if np.any(b == 0):
                raise ValueError("Div: integer division by zero")
            q = np.abs(a) // np.abs(b)
            return (np.sign(a) * np.sign(b) * q).astype(np.result_type(a, b))
        return a / b


class Concat(Module):
    """Join inputs along `axis` (1: channels)."""

    def __init__(self, axis=1):
        if not _args._is_int(axis):
            raise ValueError(f"axis must be an int; got {axis!r}")
        self.axis = int(axis)

    def forward(self, *xs):
        if not xs:
            raise ValueError("Concat needs at least one input")
        xs = [np.asarray(x) for x in xs]
        axis = _axis("axis", self.axis, xs[0].ndim)
        try:
            return np.concatenate(xs, axis=axis)
        except ValueError as e:
            raise ValueError(f"Concat along axis {self.axis}: {e}; shapes "
                             f"{[x.shape for x in xs]}") from None

    def output_shape(self, *shapes):
        return _per_sample(self._joined, *shapes)

    def _joined(self, *shapes):
        axis = _axis("axis", self.axis, len(shapes[0]))
        rest = {s[:axis] + s[axis + 1:] for s in shapes}
        if len(rest) != 1 or len({len(s) for s in shapes}) != 1:
            raise ValueError(f"Concat along axis {self.axis}: shapes {list(shapes)} differ "
                             f"off that axis")
        return shapes[0][:axis] + (sum(s[axis] for s in shapes),) + shapes[0][axis + 1:]

    def __repr__(self):
        return f"Concat(axis={self.axis})"


class AxisSoftmax(Module):
    """Softmax over `axis` (negative counts from the end).  flatten=True takes
    all axes from `axis` on together (ONNX Softmax before opset 13)."""

    def __init__(self, axis=1, flatten=False):
        if not _args._is_int(axis):
            raise ValueError(f"axis must be an int; got {axis!r}")
        self.axis, self.flatten = int(axis), bool(flatten)

    def forward(self, x):
        x = _float_input("x", x)
        a = _axis("axis", self.axis, x.ndim)
        axes = tuple(range(a, x.ndim)) if self.flatten else a
        e = np.exp(x - x.max(axis=axes, keepdims=True))
        return e / e.sum(axis=axes, keepdims=True)

    def __repr__(self):
        return f"AxisSoftmax(axis={self.axis}{', flatten' if self.flatten else ''})"


class GlobalMaxPool2d(Module):
    """Max over each channel's whole map: (N, C, H, W) -> (N, C, 1, 1)."""

    def forward(self, x):
        x = _float_input("x", x, 4)
        if x.shape[2] * x.shape[3] == 0:
            raise ValueError(f"GlobalMaxPool2d needs a non-empty map; got shape {x.shape}")
        return pool.global_max_pool2d(x)

    def output_shape(self, shape):
        return (shape[0], 1, 1)


class _WindowPool(Module):
    """Pooling over kh x kw windows with asymmetric padding (top, bottom, left,
    right), dilation and ceil_mode, ONNX semantics, on the pooling kernels of
    fastconv.pool (pads wider than torch allows included)."""
    mode = "max"

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        self.kernel_size = _args.pair("kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else _args.pair("stride", stride, 1)
        self.dilation = _args.pair("dilation", dilation, 1)
        self.padding = _args.pool_padding(padding, self.kernel_size, self.dilation, self.stride,
                                          wide_pads=True)
        self.ceil_mode = _args.flag("ceil_mode", ceil_mode)

    def output_shape(self, shape):
        if len(shape) != 3:
            raise ValueError(f"{type(self).__name__} takes (C, H, W) per sample; got {shape}")
        t, b, l, r = self.padding
        _, p = _args.pool2d_args(type(self).__name__, _shape_only((1,) + tuple(shape)),
                                 self.kernel_size, self.stride, ((t, b), (l, r)), self.dilation,
                                 self.ceil_mode, self.mode, wide_pads=True)
        return p.out_shape[1:]

    def forward(self, x):
        x = _float_input("x", x, 4)
        t, b, l, r = self.padding
        x, p = pool.params_for(
            self.__dict__.setdefault("_checked", {}), x,
            lambda x: _args.pool2d_args(type(self).__name__, x, self.kernel_size, self.stride,
                                        ((t, b), (l, r)), self.dilation, self.ceil_mode,
                                        self.mode, wide_pads=True))
        return pool.run_pool2d(x, p, resolve_backend(None))

    def __repr__(self):
        kh, kw = self.kernel_size
        extra = "".join(f", {name}={value}" for name, value, default in (
            ("padding", self.padding, (0, 0, 0, 0)), ("dilation", self.dilation, (1, 1)),
            ("ceil_mode", self.ceil_mode, False)) if value != default)
        return f"{type(self).__name__}({kh}\u00d7{kw}, stride={self.stride}{extra})"


class MaxPool(_WindowPool):
    """Max over windows; padding never wins (it counts as -inf)."""


class AveragePool(_WindowPool):
    """Mean over windows.  count_include_pad=True divides by the taps inside
    the padded input (padding counts as zeros), else by the taps inside the
    input itself.  Taps past the padding (ceil_mode) never count."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=False):
        super().__init__(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = _args.flag("count_include_pad", count_include_pad)
        self.mode = "avg" if self.count_include_pad else "avg_exclude_pad"


class Pad(Module):
    """Pad every axis: pads = (begin_0, ..., begin_n-1, end_0, ..., end_n-1) as
    ONNX; mode "constant" (with `value`), "reflect" or "edge"."""

    def __init__(self, pads, mode="constant", value=0.0):
        pads = [int(p) for p in np.asarray(pads).ravel()]
        if len(pads) % 2:
            raise ValueError(f"pads must hold a begin and an end per axis; got {pads}")
        self.pads = tuple(pads)
        self.mode = _args.choice("mode", mode, ("constant", "reflect", "edge"))
        self.value = float(value)

    def _widths(self, ndim):
        n = len(self.pads) // 2
        if n != ndim:
            raise ValueError(f"Pad has pads for {n} axes; the input has {ndim}")
        return [(self.pads[i], self.pads[n + i]) for i in range(n)]

    def forward(self, x):
        x = np.asarray(x)
        widths = self._widths(x.ndim)
        # Negative pads crop (ONNX).
        crop = tuple(slice(-min(a, 0), x.shape[i] + min(b, 0) if b < 0 else None)
                     for i, (a, b) in enumerate(widths))
        x = x[crop]
        widths = [(max(a, 0), max(b, 0)) for a, b in widths]
        if self.mode == "constant":
            return np.pad(x, widths, constant_values=self.value)
        return np.pad(x, widths, mode=self.mode)

    def output_shape(self, shape):
        return _per_sample(lambda s: tuple(d + a + b for d, (a, b) in
                                           zip(s, self._widths(len(s)))), shape)


class Reshape(Module):
    """Reshape to `shape` (ONNX rules: 0 copies the input's dimension unless
    allowzero, -1 is inferred).  Without a fixed shape, the target comes as a
    second input (a shape computed at run time)."""

    def __init__(self, shape=None, allowzero=False):
        self.shape = None if shape is None else tuple(int(d) for d in np.asarray(shape).ravel())
        self.allowzero = bool(allowzero)

    def _target(self, in_shape, shape):
        shape = [int(d) for d in np.asarray(shape).ravel()]
        if shape.count(-1) > 1:
            raise ValueError(f"Reshape: at most one -1 in {shape}")
        if not self.allowzero:
            for i, d in enumerate(shape):
                if d == 0:
                    if i >= len(in_shape):
                        raise ValueError(f"Reshape: 0 at axis {i} of {shape} has no input "
                                         f"axis to copy (input {tuple(in_shape)})")
                    shape[i] = in_shape[i]
        total = int(np.prod(in_shape))
        if -1 in shape:
            rest = int(np.prod([d for d in shape if d != -1]))
            if rest == 0 or total % rest:
                raise ValueError(f"Reshape: cannot reshape {tuple(in_shape)} into {shape}")
            shape[shape.index(-1)] = total // rest
        if int(np.prod(shape)) != total or any(d < 0 for d in shape):
            raise ValueError(f"Reshape: cannot reshape {tuple(in_shape)} into {shape}")
        return tuple(shape)

    def forward(self, x, shape=None):
        x = np.asarray(x)
        shape = self._pick(shape)
        return x.reshape(self._target(x.shape, shape))

    def _pick(self, shape):
        if shape is None:
            if self.shape is None:
                raise ValueError("Reshape without a fixed shape needs the shape as an input")
            return self.shape
        return shape

    def output_shape(self, shape, target=None):
        target = self._pick(target)
        return _per_sample(lambda s: self._target(s, target), shape)

    def __repr__(self):
        return f"Reshape({self.shape})" if self.shape is not None else "Reshape()"


class Transpose(Module):
    """Permute axes (reversed when perm is None, as NumPy and ONNX)."""

    def __init__(self, perm=None):
        self.perm = None if perm is None else tuple(int(p) for p in perm)

    def forward(self, x):
        x = np.asarray(x)
        if self.perm is not None and sorted(self.perm) != list(range(x.ndim)):
            raise ValueError(f"Transpose: perm {self.perm} is not a permutation of a "
                             f"{x.ndim}-D input's axes")
        return np.transpose(x, self.perm)

    def output_shape(self, shape):
        return _per_sample(lambda s: np.transpose(_shape_only(s), self.perm).shape, shape)

    def __repr__(self):
        return f"Transpose({self.perm})"


class Squeeze(Module):
    """Drop the given axes (each of size 1), or every axis of size 1."""

    def __init__(self, axes=None):
        self.axes = None if axes is None else tuple(int(a) for a in np.asarray(axes).ravel())

    def forward(self, x):
        x = np.asarray(x)
        if self.axes is None:
            return np.squeeze(x)
        axes = tuple(_axis("axes", a, x.ndim) for a in self.axes)
        if any(x.shape[a] != 1 for a in axes):
            raise ValueError(f"Squeeze: axes {self.axes} of shape {x.shape} are not all 1")
        return np.squeeze(x, axis=axes)

    def output_shape(self, shape):
        return _per_sample(lambda s: self.forward(_shape_only(s)).shape, shape)


class Unsqueeze(Module):
    """Insert axes of size 1 at `axes` (positions in the output)."""

    def __init__(self, axes):
        self.axes = tuple(int(a) for a in np.asarray(axes).ravel())

    def forward(self, x):
        x = np.asarray(x)
        ndim = x.ndim + len(self.axes)
        axes = sorted(_axis("axes", a, ndim) for a in self.axes)
        if len(set(axes)) != len(axes):
            raise ValueError(f"Unsqueeze: repeated axes {self.axes}")
        for a in axes:
            x = np.expand_dims(x, a)
        return x

    def output_shape(self, shape):
        return _per_sample(lambda s: self.forward(_shape_only(s)).shape, shape)


class Shape(Module):
    """The input's shape (axes start:end) as an int64 vector."""

    def __init__(self, start=0, end=None):
        self.start, self.end = int(start), None if end is None else int(end)

    def forward(self, x):
        return np.array(np.shape(x)[self.start:self.end], np.int64)


class Gather(Module):
    """np.take(x, indices, axis), negative indices counting from the end."""

    def __init__(self, axis=0):
        self.axis = int(axis)

    def forward(self, x, indices):
        x, indices = np.asarray(x), np.asarray(indices)
        if indices.dtype.kind not in "iu":
            raise TypeError(f"Gather: indices must be integers; got dtype {indices.dtype}")
        axis = _axis("axis", self.axis, x.ndim)
        size = x.shape[axis]
        if np.any((indices < -size) | (indices >= size)):
            raise ValueError(f"Gather: indices {indices.tolist()} out of range for axis "
                             f"{self.axis} of size {size}")
        return np.asarray(np.take(x, indices, axis=axis))

    def output_shape(self, shape, indices):
        return _per_sample(lambda s: self.forward(_shape_only(s), indices).shape, shape)


class Slice(Module):
    """x[starts:ends:steps] on `axes` (ONNX: ends clamp, negative counts from the end)."""

    def __init__(self, starts, ends, axes=None, steps=None):
        self.starts = [int(v) for v in np.asarray(starts).ravel()]
        self.ends = [int(v) for v in np.asarray(ends).ravel()]
        n = len(self.starts)
        self.axes = list(range(n)) if axes is None else [int(v) for v in np.asarray(axes).ravel()]
        self.steps = [1] * n if steps is None else [int(v) for v in np.asarray(steps).ravel()]
        if not len(self.ends) == len(self.axes) == len(self.steps) == n:
            raise ValueError("Slice: starts, ends, axes and steps must have the same length")
        if 0 in self.steps:
            raise ValueError("Slice: steps must not be 0")

    def forward(self, x):
        x = np.asarray(x)
        index = [slice(None)] * x.ndim
        for s, e, a, st in zip(self.starts, self.ends, self.axes, self.steps):
            # Python slicing clamps as ONNX does; huge ints (INT64_MAX) mean "to the end".
            index[_axis("axes", a, x.ndim)] = slice(s, e, st)
        return x[tuple(index)]

    def output_shape(self, shape):
        return _per_sample(lambda s: self.forward(_shape_only(s)).shape, shape)


class Cast(Module):
    """x.astype(dtype)."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        return np.asarray(x).astype(self.dtype)

    def __repr__(self):
        return f"Cast({self.dtype})"


class ConstantOfShape(Module):
    """An array of the given shape (the input, an int vector) filled with `value`."""

    def __init__(self, value=0.0, dtype=np.float32):
        self.value, self.dtype = value, np.dtype(dtype)

    def forward(self, shape):
        shape = np.asarray(shape)
        if shape.ndim != 1 or shape.dtype.kind not in "iu" or np.any(shape < 0):
            raise ValueError(f"ConstantOfShape takes a vector of sizes >= 0; got {shape!r}")
        return np.full(tuple(int(d) for d in shape), self.value, self.dtype)


class MatMul(Module):
    """a @ b with NumPy's matmul broadcasting; 2-D float operands run on the backend's GEMM."""

    def forward(self, a, b):
        from . import api
        a, b = np.asarray(a), np.asarray(b)
        if a.ndim == 2 and b.ndim == 2 and a.dtype == b.dtype and a.dtype.kind == "f":
            return api.matmul(a, b)
        return np.matmul(a, b)

    def output_shape(self, a, b):
        b = b.shape if isinstance(b, np.ndarray) else (1,) + tuple(b)
        return _per_sample(lambda p: _matmul_shape(p, b), a)

    def flops(self, a, b=None):
        return 0 if b is None else 2 * int(np.prod(self.output_shape(a, b))) * a[-1]


def _matmul_shape(a, b):
    """np.matmul's result shape for operand shapes a and b."""
    a2 = (1,) + tuple(a) if len(a) == 1 else tuple(a)
    b2 = tuple(b) + (1,) if len(b) == 1 else tuple(b)
    if a2[-1] != b2[-2]:
        raise ValueError(f"MatMul: shapes {tuple(a)} and {tuple(b)} do not chain")
    out = np.broadcast_shapes(a2[:-2], b2[:-2]) + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out
