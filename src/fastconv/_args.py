"""Normalise and validate arguments, once, before any kernel runs.

Everything a kernel relies on is checked here: after these functions return,
no backend can read or write out of bounds.  Dtype problems raise TypeError;
everything else raises ValueError naming the argument and the shapes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .backends import CAPABILITIES

BACKENDS = tuple(CAPABILITIES)
ALGORITHMS = ("auto", "direct", "im2col", "winograd")
LAYOUTS = ("NCHW", "NHWC")
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
#: Strides, dilations, paddings and padded extents stay below this, so that no
#: index a kernel computes (64-bit) can overflow.
INDEX_LIMIT = 2**62
#: The zero-padded input (N*C*padded H*padded W elements) stays below this, so
#: that a kernel sizing a padded copy, even rounded up, cannot overflow int64.
PADDED_LIMIT = 2**48


@dataclass(frozen=True)
class ConvParams:
    """A fully resolved conv2d problem: shapes, output size and all parameters."""
    n: int
    c: int
    h: int
    w: int
    k: int
    kh: int
    kw: int
    oh: int
    ow: int
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, bottom, left, right
    dilation: tuple[int, int]
    groups: int
    layout: str

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        if self.layout == "NCHW":
            return (self.n, self.k, self.oh, self.ow)
        return (self.n, self.oh, self.ow, self.k)

    @property
    def padded_hw(self) -> tuple[int, int]:
        """Height and width of the zero-padded input."""
        return padded_hw(self.h, self.w, self.padding)

    @property
    def is_depthwise(self) -> bool:
        """One input channel per group (and more than one group)."""
        return self.groups > 1 and self.groups == self.c

    @property
    def is_full_size(self) -> bool:
        """The kernel covers the whole unpadded input: the conv is an FC layer."""
        return (self.kh, self.kw) == (self.h, self.w) and self.padding == (0, 0, 0, 0) \
            and self.dilation == (1, 1) and self.groups == 1

    @property
    def is_pointwise(self) -> bool:
        """1x1 kernel, stride 1, no padding: the conv is a GEMM on the input as it lies."""
        return (self.kh, self.kw) == (1, 1) and self.stride == (1, 1) \
            and self.padding == (0, 0, 0, 0)

    @property
    def flops(self) -> int:
        return 2 * self.n * self.k * self.oh * self.ow * (self.c // self.groups) * self.kh * self.kw


def padded_hw(h: int, w: int, padding) -> tuple[int, int]:
    """(H, W) zero-padded by padding (top, bottom, left, right)."""
    return h + padding[0] + padding[1], w + padding[2] + padding[3]


def conv_out_hw(ph: int, pw: int, kh: int, kw: int, dilation, stride) -> tuple[int, int]:
    """(OH, OW) of a kh x kw conv over a ph x pw padded input.  padded_hw and
    this are plain arithmetic, so fastconv.jit calls them in nopython code too."""
    return ((ph - dilation[0] * (kh - 1) - 1) // stride[0] + 1,
            (pw - dilation[1] * (kw - 1) - 1) // stride[1] + 1)


def choice(name: str, value, allowed) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def _is_int(v) -> bool:
    if type(v) is int:  # the common case, first: this runs on every call
        return True
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def flag(name: str, value) -> bool:
    """A bool (Python or NumPy); anything else would mean different things to different backends."""
    if value is True or value is False:
        return value
    if not isinstance(value, np.bool_):
        raise ValueError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def pair(name: str, value, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= minimum."""
    if type(value) is int and minimum <= value < INDEX_LIMIT:
        return (value, value)
    vals = (value, value) if _is_int(value) else value
    try:
        vals = tuple(vals)
    except TypeError:
        raise ValueError(f"{name} must be an int or a pair of ints; got {value!r}") from None
    if len(vals) != 2 or not all(_is_int(v) for v in vals):
        raise ValueError(f"{name} must be an int or a pair of ints; got {value!r}")
    vals = (int(vals[0]), int(vals[1]))
    if min(vals) < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value!r}")
    if max(vals) >= INDEX_LIMIT:
        raise ValueError(f"{name} must be < 2**62; got {value!r}")
    return vals


def as_array(name: str, value) -> np.ndarray:
    """Any array-like as an ndarray: nested lists, the buffer protocol,
    `__array__` (torch tensors, ...) and `__dlpack__`.  What NumPy would read
    without its meaning is refused: a masked array's mask, a tensor's autograd."""
    if type(value) is np.ndarray:
        return value
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(f"{name} is a masked array; fastconv would ignore its mask. Pass "
                        f"{name}.filled(fill_value) (or {name}.data to drop the mask)")
    if getattr(value, "requires_grad", False) is True:
        raise TypeError(f"{name} is a tensor that requires grad; fastconv computes no "
                        f"gradients. Pass {name}.detach()")
    try:
        if hasattr(value, "__dlpack__") and not hasattr(value, "__array__"):
            return np.from_dlpack(value)
        return np.asarray(value)
    except (TypeError, ValueError, RuntimeError, BufferError) as e:
        # Ragged nesting is a bad value; an object NumPy cannot view is a bad type.
        err = ValueError if isinstance(value, (list, tuple)) else TypeError
        raise err(f"{name} must be an array; cannot convert {type(value).__name__}: {e}") \
            from None


def activation(relu, negative_slope, channels: int, dtype):
    """The epilogue a kernel applies after the bias: False, True (ReLU), or
    the PReLU slopes as a contiguous (channels,) array of `dtype` (from a
    scalar, one slope, or one per output channel)."""
    relu = flag("relu", relu)
    if negative_slope is None:
        return relu
    if relu:
        raise ValueError("relu=True and negative_slope are exclusive (relu is negative_slope=0)")
    if isinstance(negative_slope, (bool, np.bool_)):
        raise TypeError(f"negative_slope must be a number or an array of {channels} numbers; "
                        f"got {negative_slope!r}")
    arr = as_array("negative_slope", negative_slope)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"negative_slope must be real numbers; got dtype {arr.dtype}")
    if arr.ndim > 1 or arr.size not in (1, channels):
        raise ValueError(f"negative_slope must be a scalar or have one entry per output "
                         f"channel ({channels}); got shape {arr.shape}")
    return np.ascontiguousarray(np.broadcast_to(arr.astype(dtype, copy=False).reshape(-1),
                                                (channels,)))


def clip_bound(clip_max, relu):
    """clip_max as a float (> 0, the top of ReLU6's [0, 6]) or None; it needs relu=True."""
    if clip_max is None:
        return None
    if isinstance(clip_max, (bool, np.bool_)) or not isinstance(clip_max, (int, float, np.integer,
                                                                           np.floating)):
        raise TypeError(f"clip_max must be a number; got {clip_max!r}")
    if not clip_max > 0:
        raise ValueError(f"clip_max must be above 0 (NaN is not); got {clip_max!r}")
    if relu is not True:
        raise ValueError("clip_max needs relu=True: the result is clamped to [0, clip_max]")
    return float(clip_max)


def residual_array(residual, shape, dtype) -> np.ndarray:
    """A conv's residual= input: a float array of `dtype` broadcastable to `shape`."""
    residual = float_array("residual", residual, dtype)
    try:
        ok = np.broadcast_shapes(residual.shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"residual must broadcast to the output's shape {tuple(shape)}; "
                         f"got shape {residual.shape}")
    return residual


def apply_activation(y: np.ndarray, relu, clip_max, axis: int) -> None:
    """The store's epilogue in place, after the kernel: ReLU (y < 0 ? 0 : y,
    so NaN and -0.0 pass), PReLU slopes along `axis`, then min(y, clip_max)."""
    if isinstance(relu, np.ndarray):
        apply_slope(y, relu, axis)
    elif relu:
        np.copyto(y, 0, where=y < 0)
    if clip_max is not None:
        np.minimum(y, clip_max, out=y)


def apply_slope(y: np.ndarray, slope: np.ndarray, axis: int) -> None:
    """PReLU in place along `axis` of y: y < 0 ? slope * y : y (NaN passes),
    for backends whose kernels do not fuse it into their store."""
    shape = [1] * y.ndim
    shape[axis] = -1
    np.multiply(y, slope.reshape(shape), out=y, where=y < 0)


def float_array(name: str, value, dtype=None, ints: bool = False) -> np.ndarray:
    """An array-like as an ndarray of float32/float64 (no copy if it is one);
    with ints=True integer arrays pass too (for layers exact on integers)."""
    arr = as_array(name, value)
    if arr.dtype not in _FLOATS:
        if arr.dtype.kind == "f" and arr.dtype.newbyteorder("=") in _FLOATS:
            arr = arr.astype(arr.dtype.newbyteorder("="))  # non-native byte order
        elif not (ints and arr.dtype.kind in "iu"):
            also = " or an integer type" if ints else ""
            raise TypeError(f"{name} must be float32 or float64{also}; got dtype {arr.dtype}")
    if dtype is not None and arr.dtype != dtype:
        raise TypeError(f"{name} has dtype {arr.dtype} but the input has dtype {dtype}; "
                        "mixed float32/float64 is not supported")
    return arr


def float_dtype(name: str, value) -> np.dtype:
    """float32 or float64, given as anything np.dtype takes."""
    try:
        dt = np.dtype(value)
    except TypeError:
        raise TypeError(f"{name} must be float32 or float64; got {value!r}") from None
    if dt not in _FLOATS:
        raise TypeError(f"{name} must be float32 or float64; got {dt}")
    return dt


def shape(name: str, value, ndim: int | None = None) -> tuple[int, ...]:
    """A shape given as a sequence of non-negative ints (of `ndim` entries)."""
    try:
        dims = tuple(value)
    except TypeError:
        raise ValueError(f"{name} must be a tuple of ints; got {value!r}") from None
    if not all(_is_int(d) for d in dims):
        raise ValueError(f"{name} must be a tuple of ints; got {value!r}")
    if ndim is not None and len(dims) != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions; got {value!r}")
    if any(d < 0 for d in dims):
        raise ValueError(f"{name} has a negative dimension: {value!r}")
    return tuple(int(d) for d in dims)


def result_bytes(what: str, shape, itemsize: int) -> None:
    """Refuse an output NumPy could not even describe (more than 2**63 bytes)."""
    total = itemsize
    for d in shape:
        total *= d
    if total >= 2**63:
        raise ValueError(f"{what} of shape {tuple(shape)} would take {total:.3g} bytes, "
                         "more than an array can hold (2**63)")


def out_array(out, shape, dtype) -> np.ndarray | None:
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray; got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"out has dtype {out.dtype}; expected {dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"out has shape {out.shape}; expected {tuple(shape)}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    return out


def bias_array(bias, length: int, dtype, what: str) -> np.ndarray | None:
    if bias is None:
        return None
    b = float_array("bias", bias, dtype)
    if b.shape != (length,):
        raise ValueError(f"bias must have shape ({length},) to match {what}; got {b.shape}")
    return b


def padding4(padding, kh, kw, dilation, stride) -> tuple[int, int, int, int]:
    """padding -> (top, bottom, left, right)."""
    if type(padding) is int and 0 <= padding < INDEX_LIMIT:
        return (padding, padding, padding, padding)
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"padding='same' requires stride 1; got stride={stride}")
            th, tw = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
            # Like PyTorch: the odd pixel of padding goes to the bottom/right.
            return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        raise ValueError(f"padding must be an int, a pair, ((top, bottom), (left, right)), "
                         f"'valid' or 'same'; got {padding!r}")
    if _is_int(padding):
        p = int(padding)
        if p < 0 or p >= INDEX_LIMIT:
            raise ValueError(f"padding must be >= 0 and < 2**62; got {padding!r}")
        return (p, p, p, p)
    try:
        parts = tuple(padding)
    except TypeError:
        raise ValueError(f"padding must be an int, a pair, ((top, bottom), (left, right)), "
                         f"'valid' or 'same'; got {padding!r}") from None
    if len(parts) == 2 and all(_is_int(p) for p in parts):
        ph, pw = pair("padding", parts, 0)
        return (ph, ph, pw, pw)
    if len(parts) == 2:
        (t, b), (l, r) = pair("padding[0]", parts[0], 0), pair("padding[1]", parts[1], 0)
        return (t, b, l, r)
    raise ValueError(f"padding must be an int, a pair, ((top, bottom), (left, right)), "
                     f"'valid' or 'same'; got {padding!r}")


def conv2d_args(x, weight, bias, stride, padding, dilation, groups, layout):
    """Validate conv2d arguments; return (x, weight, bias, ConvParams)."""
    layout = choice("layout", layout, LAYOUTS)
    x = float_array("x", x)
    weight = float_array("weight", weight, x.dtype)
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D ({layout}); got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"weight must be 4-D (K, C/groups, kh, kw); got shape {weight.shape}")
    if layout == "NCHW":
        n, c, h, w = x.shape
    else:
        n, h, w, c = x.shape
    k, cg, kh, kw = weight.shape
    if c == 0:  # no kernel defines an empty reduction over channels; torch has no such conv
        raise ValueError(f"x must have at least one input channel; got shape {x.shape} ({layout})")
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"groups must be a positive int; got {groups!r}")
    groups = int(groups)
    if c % groups or k % groups:
        raise ValueError(f"groups={groups} must divide both the input channels C={c} "
                         f"and the output channels K={k}")
    if cg != c // groups:
        raise ValueError(f"weight has {cg} input channels per group but x has C={c} channels "
                         f"and groups={groups} (expected {c // groups}); layout {layout}, "
                         f"x {x.shape}, weight {weight.shape}")
    if kh < 1 or kw < 1:
        raise ValueError(f"weight kernel must be at least 1x1; got {weight.shape}")
    stride = pair("stride", stride, 1)
    dilation = pair("dilation", dilation, 1)
    pad = padding4(padding, kh, kw, dilation, stride)
    eh, ew = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    ph, pw = padded_hw(h, w, pad)
    if max(ph, pw) >= INDEX_LIMIT or n * c * ph * pw >= PADDED_LIMIT:
        raise ValueError(f"padded input ({n}x{c}x{ph}x{pw}) is too large (limits: 2**62 per "
                         f"dimension, 2**48 elements); x {x.shape}, padding {pad}")
    if eh > ph or ew > pw:
        raise ValueError(f"kernel ({eh}x{ew} after dilation) is larger than the padded input "
                         f"({ph}x{pw}); x {x.shape}, weight {weight.shape}, padding {pad}")
    oh, ow = conv_out_hw(ph, pw, kh, kw, dilation, stride)
    result_bytes("conv2d output", (n, k, oh, ow), x.itemsize)
    bias = bias_array(bias, k, x.dtype, f"weight's K={k} output channels")
    p = ConvParams(n, c, h, w, k, kh, kw, oh, ow, stride, pad, dilation, groups, layout)
    return x, weight, bias, p


def matmul_args(a, b):
    a = float_array("a", a)
    b = float_array("b", b, a.dtype)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"matmul takes 2-D a and b; got a {a.shape}, b {b.shape}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: a's columns must equal b's rows; got a {a.shape}, b {b.shape}")
    result_bytes("matmul output", (a.shape[0], b.shape[1]), a.itemsize)
    return a, b


def linear_args(x, weight, bias):
    x = float_array("x", x)
    weight = float_array("weight", weight, x.dtype)
    if x.ndim not in (1, 2):
        raise ValueError(f"x must be 1-D (in_features,) or 2-D (batch, in_features); got {x.shape}")
    if weight.ndim != 2:
        raise ValueError(f"weight must be 2-D (out_features, in_features); got {weight.shape}")
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"x has {x.shape[-1]} features but weight expects {weight.shape[1]}; "
                         f"x {x.shape}, weight {weight.shape}")
    bias = bias_array(bias, weight.shape[0], x.dtype, f"weight's {weight.shape[0]} out_features")
    result_bytes("linear output", x.shape[:-1] + weight.shape[:1], x.itemsize)
    return x, weight, bias


@dataclass(frozen=True)
class PoolParams:
    """A fully resolved 2-D pooling problem on NCHW input."""
    n: int
    c: int
    h: int
    w: int
    kh: int
    kw: int
    oh: int
    ow: int
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, bottom, left, right
    dilation: tuple[int, int]
    mode: str                           # "max", "avg" or "avg_exclude_pad"

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.oh, self.ow)


def _pool_extent(what, size, k, dil, s, before, after, ceil_mode):
    """Output length along one axis, as torch (pooling_output_shape)."""
    span = size + before + after - dil * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + before:
        out -= 1  # the last window must start inside the input or its leading padding
    if out < 1:  # with ceil_mode one window may overhang a smaller input, as in torch
        raise ValueError(f"{what}: window {dil * (k - 1) + 1} is larger than the padded "
                         f"input {size + before + after}")
    return out


def pool_padding(padding, kernel, dilation, stride, wide_pads=False):
    """Pooling padding -> (top, bottom, left, right), each side at most half
    the kernel, or with wide_pads smaller than the dilated window."""
    (kh, kw), pad = kernel, padding4(padding, *kernel, dilation, stride)
    if wide_pads:
        eh, ew = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
        if max(pad[0], pad[1]) >= eh or max(pad[2], pad[3]) >= ew:
            raise ValueError(f"padding {pad} (top, bottom, left, right) must be smaller than "
                             f"the window {eh}x{ew}")
    elif max(pad[0], pad[1]) > kh // 2 or max(pad[2], pad[3]) > kw // 2:
        raise ValueError(f"padding {pad} (top, bottom, left, right) must be at most half of "
                         f"kernel_size {(kh, kw)}")
    return pad


def pool2d_args(what, x, kernel_size, stride, padding, dilation, ceil_mode, mode,
                wide_pads=False):
    """Validate max/avg pooling arguments; return (x, PoolParams).  padding:
    int, pair or ((top, bottom), (left, right)), each side at most half the
    kernel (as torch), or with wide_pads only smaller than the dilated window
    (as ONNX: every window still starts or ends inside the input)."""
    x = float_array("x", x)
    if x.ndim != 4:
        raise ValueError(f"{what} takes x of shape (N, C, H, W); got {x.shape}")
    kh, kw = pair("kernel_size", kernel_size, 1)
    stride = (kh, kw) if stride is None else pair("stride", stride, 1)
    dilation = pair("dilation", dilation, 1)
    if isinstance(padding, str):
        raise ValueError(f"padding must be an int, a pair or ((top, bottom), (left, right)); "
                         f"got {padding!r}")
    pad = pool_padding(padding, (kh, kw), dilation, stride, wide_pads)
    ceil_mode = flag("ceil_mode", ceil_mode)
    n, c, h, w = x.shape
    oh = _pool_extent(what, h, kh, dilation[0], stride[0], pad[0], pad[1], ceil_mode)
    ow = _pool_extent(what, w, kw, dilation[1], stride[1], pad[2], pad[3], ceil_mode)
    return x, PoolParams(n, c, h, w, kh, kw, oh, ow, stride, pad, dilation, mode)


# ---- command-line arguments (argparse types: checked before any work runs) ----

def _cli_error(message: str):
    import argparse
    return argparse.ArgumentTypeError(message)


def positive_int_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _cli_error(f"expected a positive integer; got {text!r}") from None
    if value < 1:
        raise _cli_error(f"expected a positive integer; got {text!r}")
    return value


def seconds_arg(text: str) -> float:
    """A time budget: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise _cli_error(f"expected a number of seconds >= 0; got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise _cli_error(f"expected a number of seconds >= 0; got {text!r}")
    return value


def output_file_arg(text: str) -> str:
    """A file that can be written (nothing is created yet, so a failed run leaves none)."""
    path = os.path.abspath(text)
    parent = os.path.dirname(path)
    if os.path.isdir(path):
        raise _cli_error(f"{text!r} is a directory, not a file")
    if not os.path.isdir(parent):
        raise _cli_error(f"cannot write {text!r}: directory {parent!r} does not exist")
    if not os.access(parent, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise _cli_error(f"cannot write {text!r}: permission denied")
    return text
