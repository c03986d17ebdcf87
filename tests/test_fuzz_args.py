"""Garbage arguments, generated: one argument of an otherwise valid call is
replaced by an arbitrary value (None, strings, huge or negative ints, floats,
nested sequences, arrays of every dtype and shape, ...).

Each backend must then either compute what the oracle computes for the same
arguments, or raise TypeError/ValueError naming that argument, exactly when
the oracle raises the same.  Anything else (another exception type, a crash,
a wrong answer) fails.  The hand-written list of bad inputs is in
test_validation.py; this covers what a list misses.
"""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fastconv
from fastconv import lower

BACKENDS = ["c", "numba", "numpy"]
DTYPES = ["float32", "float64", "float16", ">f4", "int8", "int64", "uint64", "bool",
          "complex64", "object", "U3", "datetime64[s]"]
WORDS = ["same", "valid", "NCHW", "NHWC", "auto", "direct", "im2col", "c", "numba",
         "numpy", "", "SAME"]


def array_of(dtype, shape):
    return (np.arange(int(np.prod(shape))) % 3).astype(dtype).reshape(shape)


def garbage():
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(-2**70, 2**70), st.integers(-3, 5),
        st.floats(allow_nan=True, allow_infinity=True), st.complex_numbers(),
        st.text(max_size=4), st.binary(max_size=3), st.sampled_from(WORDS),
        st.sampled_from([np.int64(2), np.uint64(2**63), np.int8(-1), np.float32(1.0),
                         np.bool_(True), object(), Ellipsis, slice(1), {}, set()]))
    arrays = st.builds(array_of, st.sampled_from(DTYPES),
                       st.lists(st.integers(0, 4), max_size=5).map(tuple))
    nested = st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.tuples(inner, inner), st.tuples(inner)), max_leaves=5)
    return st.one_of(scalars, arrays, nested)


def outcome(call):
    try:
        return call()
    except (TypeError, ValueError) as e:
        return e


def check(call, name, backend):
    """`call(be)` on `backend` agrees with the oracle: same result, or the same
    error type, with a message that names argument `name`."""
    want = outcome(lambda: call("numpy"))
    got = outcome(lambda: call(backend))
    if isinstance(want, Exception) or isinstance(got, Exception):
        assert type(got) is type(want), f"{backend}: {got!r}; oracle: {want!r}"
        assert name in str(got) or "float32 or float64" in str(got), \
            f"{backend}: message does not name {name!r}: {got}"
        return
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.array_equal(got, want, equal_nan=True), f"{backend}: wrong answer"


MAX_OUTPUT = 1 << 20  # elements; a valid call asking for more (padding=10**5) is skipped


def conv_call(arg, value):
    kwargs = dict(x=array_of("float32", (2, 4, 5, 6)), weight=array_of("float32", (6, 2, 3, 2)),
                  bias=array_of("float32", (6,)), stride=(1, 2), padding=((1, 0), (0, 1)),
                  dilation=1, groups=2, algorithm="auto", layout="NCHW", out=None, relu=False)
    kwargs[arg] = value
    try:  # a valid but huge problem is not garbage; computing it could exhaust memory
        plan = lower.conv2d(np.shape(kwargs["x"]), np.shape(kwargs["weight"]),
                            *(kwargs[k] for k in ("stride", "padding", "dilation", "groups",
                                                  "layout", "algorithm")))
        assume(plan.m * plan.n * plan.groups <= MAX_OUTPUT)
    except (TypeError, ValueError):
        pass
    return lambda be: fastconv.conv2d(**kwargs, backend=be)


def linear_call(arg, value):
    kwargs = dict(x=array_of("float64", (3, 5)), weight=array_of("float64", (4, 5)),
                  bias=array_of("float64", (4,)), out=None, relu=True)
    kwargs[arg] = value
    return lambda be: fastconv.linear(**kwargs, backend=be)


def matmul_call(arg, value):
    kwargs = dict(a=array_of("float32", (3, 5)), b=array_of("float32", (5, 2)), out=None)
    kwargs[arg] = value
    return lambda be: fastconv.matmul(**kwargs, backend=be)


CONV_ARGS = ["x", "weight", "bias", "stride", "padding", "dilation", "groups", "algorithm",
             "layout", "out", "relu"]


@pytest.mark.parametrize("backend", BACKENDS)
@given(arg=st.sampled_from(CONV_ARGS), value=garbage())
def test_conv2d_garbage(backend, arg, value):
    check(conv_call(arg, value), arg, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@given(arg=st.sampled_from(["x", "weight", "bias", "out", "relu"]), value=garbage())
def test_linear_garbage(backend, arg, value):
    check(linear_call(arg, value), arg, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@given(arg=st.sampled_from(["a", "b", "out"]), value=garbage())
def test_matmul_garbage(backend, arg, value):
    check(matmul_call(arg, value), arg, backend)


@given(value=garbage())
def test_backend_garbage(value):
    call = conv_call("x", array_of("float32", (2, 4, 5, 6)))
    got = outcome(lambda: call(value))
    if isinstance(got, Exception):
        assert "backend" in str(got), got
    else:
        assert value in BACKENDS or value is None
