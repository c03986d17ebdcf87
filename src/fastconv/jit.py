"""conv2d, linear and matmul for Numba users: callable from Python and from
inside the user's own @numba.njit functions (nopython mode, cache=True and
parallel=True included):

    @numba.njit(cache=True)
    def features(x, w, b, fc_w):
        y = fastconv.jit.conv2d(x, w, b, stride=2, padding=1)
        return fastconv.jit.linear(y.reshape(y.shape[0], -1), fc_w)

Semantics are those of fastconv.conv2d / linear / matmul (NCHW only; each
call returns a new C-contiguous array), and bad arguments raise the same
exception classes naming the argument, inside compiled code too.  padding
"same" / "valid" must be a compile-time constant in nopython code (a string
variable is turned into one by literal dispatch, compiling once per value).

How it works: each function has a Numba @overload, so Numba compiles it into
the caller like its own code; the overloads validate, then call the Numba
backend's kernels (gemm.run_kernel, conv._direct) directly, with no
function pointers, so the caller's cache=True holds the whole computation.
From Python, arguments are validated by fastconv._args and the same compiled
core runs.  Threads: Numba's own count (numba.set_num_threads), not
fastconv.set_num_threads, so the user's Numba settings rule inside their
code.  Nested in a user's prange, the kernels' parallel regions need the
omp or tbb threading layer (Numba's workqueue layer aborts on nesting).

The nopython checks mirror fastconv._args (tests/test_jit.py holds them to
the same errors).  Numba validates a cache against the cached function's own
file only: the core functions here link in the backend's kernels and
_args's size rules, so after editing gemm.py, conv.py or those rules, touch
this file (or clear its __pycache__).
"""
import numba
import numpy as np
from numba import types
from numba.extending import overload, register_jitable

from . import _args
from .backends.numba import _runtime
from .backends.numba.conv import _direct, direct_rows
from .backends.numba.gemm import NO_PATCHES, Patches, run_kernel, zero_of

__all__ = ["conv2d", "linear", "matmul"]

# A user's cached function is loaded after this module (it names it), and
# runs the layer's code (see _runtime.start_threading_layer).
_runtime.start_threading_layer()

# The conv size rules of fastconv._args, in nopython code too.
register_jitable(_args.padded_hw)
register_jitable(_args.conv_out_hw)


# -- the compiled cores: validated, C-contiguous writable operands ---------
# They call gemm.run_kernel with the argument types fastconv's Python path
# gives it (int64, bool), never literals: Numba compiles a callee once per
# argument types, and a literal 1 or False would compile the whole GEMM again.
# NumPy scalars, unlike Python ints, are typed as plain int64 / bool.
_ZERO, _ONE, _NO_RELU = np.int64(0), np.int64(1), np.bool_(False)

@numba.njit(**_runtime.JIT)
def _conv2d(x, weight, bias, has_bias, sh, sw, pt, pb, pl, pr, dh, dw, groups):
    """NCHW conv; bias is an empty array when has_bias is False."""
    n, c, h, w = x.shape
    k, cg, kh, kw = weight.shape
    hp, wp = _args.padded_hw(h, w, (pt, pb, pl, pr))
    oh, ow = _args.conv_out_hw(hp, wp, kh, kw, (dh, dw), (sh, sw))
    y = np.empty((n, k, oh, ow), x.dtype)
    if y.size == 0:
        return y
    nthreads = _runtime.num_threads()
    xf, wf, yf = x.reshape(x.size), weight.reshape(weight.size), y.reshape(y.size)
    kg = k // groups
    if groups > 1 and groups == c:
        # Depthwise: the per-group GEMM is a 1 x kh*kw sliver, so direct
        # convolution, as the backend's algorithm="auto" chooses.
        xp = np.zeros((n, c, hp, wp), x.dtype)
        xp[:, :, pt:pt + h, pl:pl + w] = x
        _direct(xp.reshape(xp.size), wf, bias, has_bias, _NO_RELU, yf, n, c, hp, wp, k,
                kh, kw, oh, ow, sh, sw, dh, dw, groups, direct_rows(oh, ow), zero_of(yf))
        return y
    # Per group, the GEMM fastconv.lower.group_gemm gives NCHW (weights as A,
    # a bias per row): Y_g[kg, pixels] = W_g[kg, C/g*kh*kw] @ patches, the
    # patches packed straight from the image (see conv.py); 1x1 stride-1
    # unpadded convs read the image itself as the matrix.
    pointwise = kh == 1 and kw == 1 and sh == 1 and sw == 1 and pt + pb + pl + pr == 0
    patches = NO_PATCHES if pointwise else Patches(
        ow=ow, r0=0, sh=sh, sw=sw, dh=dh, dw=dw, pad_top=pt, pad_left=pl, kh=kh, kw=kw,
        h=h, w=w, xs_c=h * w, xs_h=w, xs_w=1)
    sb0, sb1 = (h * w, 1) if pointwise else (0, 0)
    kdim = cg * kh * kw
    bias_axis = 0 if has_bias else -1
    for img in range(n):
        for g in range(groups):
            run_kernel(wf, g * kg * kdim, kdim, _ONE, NO_PATCHES,
                       xf, (img * c + g * cg) * h * w, sb0, sb1, patches,
                       yf, (img * k + g * kg) * oh * ow, oh * ow, kg, oh * ow, kdim,
                       bias[g * kg:(g + 1) * kg], bias_axis, _NO_RELU, nthreads)
    return y


@numba.njit(**_runtime.JIT)
def _matmul(a, b, b_transposed, bias, has_bias):
    """a @ b, or a @ b.T when b_transposed (linear's weight, read as it lies),
    plus bias per column."""
    m, k = a.shape
    n = b.shape[0] if b_transposed else b.shape[1]
    y = np.empty((m, n), a.dtype)
    if y.size == 0:
        return y
    if k == 0:
        y[:] = 0
        if has_bias:
            y += bias
        return y
    sb0, sb1 = (_ONE, k) if b_transposed else (n, _ONE)
    run_kernel(a.reshape(a.size), _ZERO, k, _ONE, NO_PATCHES, b.reshape(b.size), _ZERO, sb0, sb1,
               NO_PATCHES, y.reshape(y.size), _ZERO, n, m, n, k, bias,
               1 if has_bias else -1, _NO_RELU, _runtime.num_threads())
    return y


# -- from Python: validate as the Python API does, then run the core --------

def _operand(arr):
    return _runtime.kernel_operand(np.ascontiguousarray(arr))


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """As fastconv.conv2d (NCHW, algorithm "auto"), compiled; also callable in nopython code."""
    x, weight, bias, p = _args.conv2d_args(x, weight, bias, stride, padding, dilation, groups,
                                           "NCHW")
    return _conv2d(_operand(x), _operand(weight), _runtime.vector(bias, x.dtype),
                   bias is not None, *p.stride, *p.padding, *p.dilation, p.groups)


def linear(x, weight, bias=None):
    """As fastconv.linear: x @ weight.T + bias; also callable in nopython code."""
    x, weight, bias = _args.linear_args(x, weight, bias)
    rows = 1 if x.ndim == 1 else x.shape[0]
    y = _matmul(_operand(x.reshape(rows, x.shape[-1])), _operand(weight), True,
                _runtime.vector(bias, x.dtype), bias is not None)
    return y.reshape(x.shape[:-1] + (weight.shape[0],))


def matmul(a, b):
    """As fastconv.matmul: a @ b for 2-D arrays; also callable in nopython code."""
    a, b = _args.matmul_args(a, b)
    return _matmul(_operand(a), _operand(b), False, np.empty(0, a.dtype), False)


# -- in nopython code: the overloads ---------------------------------------
# Type errors found while typing become a compiled `raise`, so the user's
# function compiles and the call raises what the Python API would.

_FLOATS = (types.float32, types.float64)


def _raising(exc, msg, params):
    """An implementation taking `params` (the overloaded function's) that raises exc(msg)."""
    scope = {"exc": exc, "msg": msg}
    exec(f"def impl({', '.join(params)}):\n    raise exc(msg)\n", scope)
    return scope["impl"]


def _array_error(name, arr, ndims, dtype=None):
    """Why arr (a Numba type) is not a float array of one of ndims dims, or None."""
    if not isinstance(arr, types.Array):
        return TypeError, f"{name} must be an array of float32 or float64; got {arr}"
    if arr.dtype not in _FLOATS:
        return TypeError, f"{name} must be float32 or float64; got dtype {arr.dtype}"
    if dtype is not None and arr.dtype != dtype:
        return TypeError, (f"{name} has dtype {arr.dtype} but the input has dtype {dtype}; "
                           "mixed float32/float64 is not supported")
    if arr.ndim not in ndims:
        dims = " or ".join(f"{d}-D" for d in ndims)
        return ValueError, f"{name} must be {dims}; got {arr.ndim}-D"
    return None


def _given(t):
    """The type of an argument; that of its default if the caller omitted it
    (Numba then hands the overload the default itself, or Omitted(default))."""
    if isinstance(t, types.Omitted):
        t = t.value
    return t if isinstance(t, types.Type) else numba.typeof(t)


def _is_none(t):
    return t is None or isinstance(t, (types.NoneType, types.Omitted))


def _bias_error(bias, dtype):
    return None if _is_none(bias) else _array_error("bias", bias, (1,), dtype)


def _is_pair(t):
    if isinstance(t, types.Integer) and not isinstance(t, types.Boolean):
        return True
    return isinstance(t, types.BaseTuple) and len(t) == 2 and \
        all(isinstance(v, types.Integer) and not isinstance(v, types.Boolean) for v in t)


def _pair(value):
    """(int64, int64) from an int or a pair of ints (types checked by the caller)."""


@overload(_pair)
def _pair_nb(value):
    if isinstance(value, types.Integer):
        return lambda value: (np.int64(value), np.int64(value))
    return lambda value: (np.int64(value[0]), np.int64(value[1]))


def _contiguous(arr):
    """arr as a C-contiguous writable array (a copy if it is not one)."""


@overload(_contiguous)
def _contiguous_nb(arr):
    if arr.layout == "C" and arr.mutable and arr.aligned:
        return lambda arr: arr
    return lambda arr: arr.copy()


def _bias_vector(bias, dtype):
    """(contiguous bias, has_bias); an empty array for None."""


@overload(_bias_vector)
def _bias_vector_nb(bias, dtype):
    if _is_none(bias):
        return lambda bias, dtype: (np.empty(0, dtype), False)
    return lambda bias, dtype: (_contiguous(bias), True)


@numba.njit(**_runtime.JIT)
def _check_pair(v, minimum):
    """0 if both entries of v are in [minimum, 2**62); else 1 (too small) or 2 (too large)."""
    if min(v[0], v[1]) < minimum:
        return 1
    if max(v[0], v[1]) >= _args.INDEX_LIMIT:
        return 2
    return 0


_PAD_HELP = "padding must be an int, a pair, ((top, bottom), (left, right)), 'valid' or 'same'"


def _padding_kind(padding):
    """How a padding type is read: 'int', 'pair', 'pairs', a literal string, or None."""
    if isinstance(padding, types.Integer) and not isinstance(padding, types.Boolean):
        return "int"
    if _is_pair(padding):
        return "pair"
    if isinstance(padding, types.BaseTuple) and len(padding) == 2 and all(map(_is_pair, padding)) \
            and not any(isinstance(p, types.Integer) for p in padding):
        return "pairs"
    if isinstance(padding, types.StringLiteral):
        return padding.literal_value
    return None


@register_jitable
def _checked_padding(t, b, l, r):
    if min(min(t, b), min(l, r)) < 0:
        raise ValueError("padding must be >= 0")
    if max(max(t, b), max(l, r)) >= _args.INDEX_LIMIT:
        raise ValueError("padding must be < 2**62")
    return (t, b, l, r)


def _pad4(padding, kh, kw, dh, dw, sh, sw):
    """(top, bottom, left, right) as int64, validated (type checked by the caller)."""


@overload(_pad4, prefer_literal=True)
def _pad4_nb(padding, kh, kw, dh, dw, sh, sw):
    kind = _padding_kind(padding)
    if kind == "same":
        def same(padding, kh, kw, dh, dw, sh, sw):
            if sh != 1 or sw != 1:
                raise ValueError("padding='same' requires stride 1")
            th, tw = dh * (kh - 1), dw * (kw - 1)
            return (th // 2, th - th // 2, tw // 2, tw - tw // 2)  # odd pixel bottom/right
        return same
    if kind == "valid":
        return lambda padding, kh, kw, dh, dw, sh, sw: (np.int64(0), np.int64(0),
                                                         np.int64(0), np.int64(0))
    if kind == "int":
        return lambda padding, kh, kw, dh, dw, sh, sw: _checked_padding(
            np.int64(padding), np.int64(padding), np.int64(padding), np.int64(padding))
    if kind == "pair":
        return lambda padding, kh, kw, dh, dw, sh, sw: _checked_padding(
            np.int64(padding[0]), np.int64(padding[0]), np.int64(padding[1]), np.int64(padding[1]))
    if kind == "pairs":
        return lambda padding, kh, kw, dh, dw, sh, sw: _checked_padding(
            np.int64(padding[0][0]), np.int64(padding[0][1]),
            np.int64(padding[1][0]), np.int64(padding[1][1]))
    return None


_CONV_PARAMS = ("x", "weight", "bias=None", "stride=1", "padding=0", "dilation=1", "groups=1")


@overload(conv2d, prefer_literal=True)
def _conv2d_nb(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    stride, padding, dilation, groups = map(_given, (stride, padding, dilation, groups))
    error = _array_error("x", x, (4,)) or _array_error("weight", weight, (4,), x.dtype) or \
        _bias_error(bias, x.dtype)
    if error is None and not _is_pair(stride):
        error = ValueError, f"stride must be an int or a pair of ints; got {stride}"
    if error is None and not _is_pair(dilation):
        error = ValueError, f"dilation must be an int or a pair of ints; got {dilation}"
    if error is None and not (isinstance(groups, types.Integer)
                              and not isinstance(groups, types.Boolean)):
        error = ValueError, f"groups must be a positive int; got {groups}"
    if error is None and isinstance(padding, types.UnicodeType):
        # A string variable: compile again with its value as a literal.
        return lambda x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1: \
            numba.literally(padding)
    kind = _padding_kind(padding)
    if error is None and kind not in ("int", "pair", "pairs", "same", "valid"):
        error = ValueError, f"{_PAD_HELP}; got {padding}"
    if error is not None:
        return _raising(*error, _CONV_PARAMS)
    dtype = x.dtype

    def impl(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        n, c, h, w = x.shape
        k, cg, kh, kw = weight.shape
        if c == 0:
            raise ValueError("x must have at least one input channel")
        if groups < 1:
            raise ValueError("groups must be a positive int")
        if c % groups or k % groups:
            raise ValueError("groups=" + str(groups) + " must divide both the input channels C="
                             + str(c) + " and the output channels K=" + str(k))
        if cg != c // groups:
            raise ValueError("weight has " + str(cg) + " input channels per group but x has C="
                             + str(c) + " channels and groups=" + str(groups))
        if kh < 1 or kw < 1:
            raise ValueError("weight kernel must be at least 1x1")
        s = _pair(stride)
        d = _pair(dilation)
        bad = _check_pair(s, 1)
        if bad:
            raise ValueError("stride must be >= 1" if bad == 1 else "stride must be < 2**62")
        bad = _check_pair(d, 1)
        if bad:
            raise ValueError("dilation must be >= 1" if bad == 1 else "dilation must be < 2**62")
        pt, pb, pl, pr = _pad4(padding, kh, kw, d[0], d[1], s[0], s[1])
        hp, wp = _args.padded_hw(h, w, (pt, pb, pl, pr))
        if max(hp, wp) >= _args.INDEX_LIMIT or \
                float(n) * float(c) * float(hp) * float(wp) >= float(_args.PADDED_LIMIT):
            raise ValueError("padded input is too large (limits: 2**62 per dimension, "
                             "2**48 elements)")
        if d[0] * (kh - 1) + 1 > hp or d[1] * (kw - 1) + 1 > wp:
            raise ValueError("kernel (after dilation) is larger than the padded input")
        b, has_bias = _bias_vector(bias, dtype)
        if has_bias and b.shape[0] != k:
            raise ValueError("bias must have shape (" + str(k) + ",) to match weight's K="
                             + str(k) + " output channels")
        return _conv2d(_contiguous(x), _contiguous(weight), b, has_bias, s[0], s[1],
                       pt, pb, pl, pr, d[0], d[1], np.int64(groups))
    return impl


@overload(linear)
def _linear_nb(x, weight, bias=None):
    error = _array_error("x", x, (1, 2)) or _array_error("weight", weight, (2,), x.dtype) or \
        _bias_error(bias, x.dtype)
    if error is not None:
        return _raising(*error, ("x", "weight", "bias=None"))
    dtype, vector_input = x.dtype, x.ndim == 1

    def impl(x, weight, bias=None):
        if x.shape[-1] != weight.shape[1]:
            raise ValueError("x has " + str(x.shape[-1]) + " features but weight expects "
                             + str(weight.shape[1]))
        b, has_bias = _bias_vector(bias, dtype)
        if has_bias and b.shape[0] != weight.shape[0]:
            raise ValueError("bias must have shape (" + str(weight.shape[0])
                             + ",) to match weight's out_features")
        rows = 1 if vector_input else x.shape[0]
        y = _matmul(_contiguous(x).reshape(rows, x.shape[-1]), _contiguous(weight),
                    True, b, has_bias)
        return y.reshape(weight.shape[0]) if vector_input else y
    return impl


@overload(matmul)
def _matmul_nb(a, b):
    error = _array_error("a", a, (2,)) or _array_error("b", b, (2,), a.dtype)
    if error is not None:
        return _raising(*error, ("a", "b"))
    dtype = a.dtype

    def impl(a, b):
        if a.shape[1] != b.shape[0]:
            raise ValueError("matmul: a's columns must equal b's rows; got a ("
                             + str(a.shape[0]) + ", " + str(a.shape[1]) + "), b ("
                             + str(b.shape[0]) + ", " + str(b.shape[1]) + ")")
        return _matmul(_contiguous(a), _contiguous(b), False, np.empty(0, dtype), False)
    return impl
