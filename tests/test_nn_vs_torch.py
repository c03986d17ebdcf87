"""Property test: every nn layer against the torch.nn module it mirrors.

For random shapes (empty batches included), dtypes (integers too), parameters,
padding and ceil_mode, either both refuse the input (torch raises; fastconv
raises ValueError/TypeError, never anything else) or both give the same
output shape, dtype and values, and fastconv's output_shape and params agree.

CI runs the hypothesis profile's example count per layer; for a long local
run set FASTCONV_NN_EXAMPLES, e.g.

  FASTCONV_NN_EXAMPLES=10000 PYTHONPATH=src python -m pytest -q tests/test_nn_vs_torch.py
"""
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fastconv import nn

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
tnn = torch.nn

_examples = os.environ.get("FASTCONV_NN_EXAMPLES")
examples = settings(max_examples=int(_examples)) if _examples else (lambda test: test)

FLOATS = [np.float32, np.float64]
INTS = [np.int8, np.uint8, np.int32, np.int64]
TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def data(seed, shape, dtype):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def agree(make_ours, make_torch, x, refuses_ints=False):
    """Both refuse, or both return the same thing.  With refuses_ints, fastconv
    refuses integer input that torch computes (by truncating, as int64 means)."""
    try:
        module = make_torch()
        with torch.no_grad():
            want = module(torch.from_numpy(x)).numpy()
    except (RuntimeError, ValueError, NotImplementedError, IndexError) as e:
        refused = e
    else:
        refused = None
    try:
        layer = make_ours()
        got = layer(x)
    except (ValueError, TypeError) as e:
        # fastconv refuses a dtype whatever the size; torch checks it only when
        # there is something to compute.
        ints = isinstance(e, TypeError) and x.dtype.kind in "iu" and (x.size == 0 or refuses_ints)
        assert refused is not None or ints, f"fastconv refused what torch computes: {e}"
        return
    assert refused is None, f"torch refused ({refused}) but fastconv returned {got.shape}"
    assert got.shape == want.shape and got.dtype == want.dtype, \
        (got.shape, got.dtype, want.shape, want.dtype)
    assert layer.output_shape(x.shape[1:]) == want.shape[1:]
    assert layer.params() == sum(p.numel() for p in module.parameters())
    if got.dtype.kind in "iu":
        assert np.array_equal(got, want)
    else:
        tol = 1e-4 if got.dtype == np.float32 else 1e-10
        scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
        err = float(np.abs(got.astype(np.float64) - want).max()) if want.size else 0.0
        assert err <= tol * scale, f"max error {err:.3g} (scale {scale:.3g})"


pair = st.tuples(st.integers(1, 3), st.integers(1, 3))
seeds = st.integers(0, 2**32 - 1)
some_floats = st.sampled_from(FLOATS)
floats_or_ints = st.sampled_from(FLOATS + INTS)


@examples
@given(n=st.integers(0, 2), groups=st.integers(1, 3), cg=st.integers(1, 3), kg=st.integers(1, 3),
       kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)), stride=pair,
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       padding=st.one_of(st.tuples(st.integers(0, 2), st.integers(0, 2)),
                         st.sampled_from(["same", "valid"])),
       hw=st.tuples(st.integers(1, 9), st.integers(1, 9)), bias=st.booleans(),
       dtype=st.sampled_from(FLOATS + [np.int32]), seed=seeds)
def test_conv2d(n, groups, cg, kg, kernel, stride, dilation, padding, hw, bias, dtype, seed):
    c, k = cg * groups, kg * groups
    x = data(seed, (n, c) + hw, dtype)
    wdtype = dtype if np.dtype(dtype).kind == "f" else np.float32
    w, b = data(seed + 1, (k, cg) + kernel, wdtype), data(seed + 2, (k,), wdtype)

    def make_torch():
        m = tnn.Conv2d(c, k, kernel, stride, padding, dilation, groups, bias,
                       dtype=TORCH_DTYPE[np.dtype(wdtype)])
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(w))
            if bias:
                m.bias.copy_(torch.from_numpy(b))
        return m
    agree(lambda: nn.Conv2d(w, b if bias else None, stride, padding, dilation, groups),
          make_torch, x)


@examples
@given(n=st.integers(0, 3), fin=st.integers(1, 12), fout=st.integers(1, 8), bias=st.booleans(),
       dtype=st.sampled_from(FLOATS + [np.int64]), seed=seeds)
def test_linear(n, fin, fout, bias, dtype, seed):
    x = data(seed, (n, fin), dtype)
    wdtype = dtype if np.dtype(dtype).kind == "f" else np.float32
    w, b = data(seed + 1, (fout, fin), wdtype), data(seed + 2, (fout,), wdtype)

    def make_torch():
        m = tnn.Linear(fin, fout, bias, dtype=TORCH_DTYPE[np.dtype(wdtype)])
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(w))
            if bias:
                m.bias.copy_(torch.from_numpy(b))
        return m
    agree(lambda: nn.Linear(w, b if bias else None), make_torch, x)


@examples
@given(n=st.integers(0, 2), c=st.integers(1, 3), hw=st.tuples(st.integers(1, 9), st.integers(1, 9)),
       kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)), stride=st.one_of(st.none(), pair),
       padding=st.tuples(st.integers(0, 2), st.integers(0, 2)), ceil_mode=st.booleans(),
       dtype=floats_or_ints, seed=seeds)
def test_max_pool2d(n, c, hw, kernel, stride, padding, ceil_mode, dtype, seed):
    x = data(seed, (n, c) + hw, dtype)
    agree(lambda: nn.MaxPool2d(kernel, stride, padding, ceil_mode),
          lambda: tnn.MaxPool2d(kernel, stride, padding, ceil_mode=ceil_mode), x)


@examples
@given(n=st.integers(0, 2), c=st.integers(1, 3), hw=st.tuples(st.integers(1, 9), st.integers(1, 9)),
       kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)), stride=st.one_of(st.none(), pair),
       padding=st.tuples(st.integers(0, 2), st.integers(0, 2)), ceil_mode=st.booleans(),
       dtype=floats_or_ints, seed=seeds)
def test_avg_pool2d(n, c, hw, kernel, stride, padding, ceil_mode, dtype, seed):
    x = data(seed, (n, c) + hw, dtype)
    agree(lambda: nn.AvgPool2d(kernel, stride, padding, ceil_mode),
          lambda: tnn.AvgPool2d(kernel, stride, padding, ceil_mode=ceil_mode), x,
          refuses_ints=True)


@examples
@given(n=st.integers(0, 2), c=st.integers(1, 4), hw=st.tuples(st.integers(1, 7), st.integers(1, 7)),
       dtype=floats_or_ints, seed=seeds)
def test_global_avg_pool2d(n, c, hw, dtype, seed):
    agree(nn.GlobalAvgPool2d, lambda: tnn.AdaptiveAvgPool2d(1), data(seed, (n, c) + hw, dtype))


@examples
@given(shape=st.lists(st.integers(0, 5), min_size=2, max_size=4).map(tuple),
       slopes=st.sampled_from(["one", "per channel", "other"]),
       dtype=st.sampled_from(FLOATS + [np.int32]), seed=seeds)
def test_prelu(shape, slopes, dtype, seed):
    c = shape[1]
    count = {"one": 1, "per channel": max(c, 1), "other": c + 2}[slopes]
    sdtype = dtype if np.dtype(dtype).kind == "f" else np.float32
    slope = data(seed + 1, (count,), sdtype)
    x = data(seed, shape, dtype)

    def make_torch():
        m = tnn.PReLU(count, dtype=TORCH_DTYPE[np.dtype(sdtype)])
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(slope))
        return m
    agree(lambda: nn.PReLU(slope), make_torch, x)


@examples
@given(shape=st.lists(st.integers(0, 5), min_size=1, max_size=4).map(tuple),
       dtype=floats_or_ints, seed=seeds)
def test_relu(shape, dtype, seed):
    agree(nn.ReLU, tnn.ReLU, data(seed, shape, dtype))


@examples
@given(shape=st.lists(st.integers(0, 5), min_size=2, max_size=4).map(tuple),
       dtype=floats_or_ints, seed=seeds)
def test_softmax(shape, dtype, seed):
    agree(nn.Softmax, lambda: tnn.Softmax(dim=1), data(seed, shape, dtype))


@examples
@given(shape=st.lists(st.integers(0, 5), min_size=2, max_size=4).map(tuple),
       dtype=floats_or_ints, seed=seeds)
def test_flatten(shape, dtype, seed):
    agree(nn.Flatten, tnn.Flatten, data(seed, shape, dtype))
