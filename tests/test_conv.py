"""conv2d on every backend and algorithm against the oracle."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastconv
from checks import ALGORITHMS, BACKENDS, DTYPES, DTYPES_F64_SLOW, assert_close, slow_except

# (name, n, c, h, w, k, kh, kw, stride, padding, dilation, groups)
GRID = [
    ("1x1 image", 1, 3, 1, 1, 4, 1, 1, 1, 0, 1, 1),
    ("1x1 image padded 3x3", 2, 2, 1, 1, 3, 3, 3, 1, 1, 1, 1),
    ("kernel = input", 2, 3, 5, 4, 6, 5, 4, 1, 0, 1, 1),
    ("kernel = padded input", 1, 2, 3, 3, 2, 5, 5, 1, 1, 1, 1),
    ("stride > kernel", 1, 3, 11, 9, 4, 2, 2, 3, 0, 1, 1),
    ("asymmetric padding", 1, 3, 6, 7, 5, 3, 3, 1, ((0, 2), (1, 0)), 1, 1),
    ("same", 2, 4, 6, 5, 3, 3, 3, 1, "same", 1, 1),
    ("same even kernel dilated", 1, 2, 7, 6, 2, 2, 4, 1, "same", 2, 1),
    ("valid", 1, 2, 6, 6, 3, 3, 2, (2, 1), "valid", 1, 1),
    ("dilation", 1, 3, 9, 10, 4, 3, 3, 1, 2, (2, 3), 1),
    ("groups", 2, 6, 7, 7, 9, 3, 3, 2, 1, 1, 3),
    ("depthwise", 1, 8, 9, 9, 8, 3, 3, 1, 1, 1, 8),
    ("depthwise x2 multiplier", 1, 4, 6, 6, 8, 3, 3, 2, 1, 1, 4),
    ("pointwise", 2, 5, 4, 6, 7, 1, 1, 1, 0, 1, 1),
    ("pointwise groups", 1, 6, 3, 3, 4, 1, 1, 1, 0, 1, 2),
    ("pointwise strided", 1, 5, 7, 7, 3, 1, 1, 2, 0, 1, 1),
    ("5x5 lenet-like", 3, 1, 12, 12, 6, 5, 5, 1, 2, 1, 1),
    ("7x7 stride 2", 1, 3, 17, 15, 8, 7, 7, 2, 3, 1, 1),
    ("wide channels", 1, 37, 5, 5, 19, 3, 3, 1, 1, 1, 1),
]

QUICK = [i for i, g in enumerate(GRID) if g[0] in (
    "1x1 image padded 3x3", "kernel = padded input", "stride > kernel", "asymmetric padding",
    "same even kernel dilated", "groups", "depthwise x2 multiplier", "pointwise strided")]


def make(case, dtype, layout, rng):
    _, n, c, h, w, k, kh, kw, stride, padding, dilation, groups = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((k, c // groups, kh, kw)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return x, wt, b, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@pytest.mark.parametrize("case", slow_except(GRID, QUICK), ids=[g[0] for g in GRID])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", DTYPES_F64_SLOW)
def test_conv_grid(case, backend, algorithm, layout, dtype):
    x, w, b, kw = make(case, dtype, layout, np.random.default_rng(7))
    want = fastconv.conv2d(x, w, b, **kw, layout=layout, backend="numpy")
    got = fastconv.conv2d(x, w, b, **kw, layout=layout, backend=backend, algorithm=algorithm)
    assert_close(got, want, dtype)
    got_relu = fastconv.conv2d(x, w, b, **kw, layout=layout, backend=backend,
                               algorithm=algorithm, relu=True)
    assert_close(got_relu, np.maximum(want, 0), dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_conv_noncontiguous_views(backend, algorithm, layout):
    rng = np.random.default_rng(3)
    big = rng.standard_normal((3, 8, 13, 11)).astype(np.float32)
    x = big[::-1, 1::2, ::-2, 1:]            # negative and non-unit strides
    if layout == "NHWC":
        x = x.transpose(0, 2, 3, 1)         # a view, not contiguous in NHWC
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)[:, :, ::-1]
    w = np.asfortranarray(w)
    kw = dict(stride=(1, 2), padding=1, groups=2, layout=layout)
    want = fastconv.conv2d(x, w, None, **kw, backend="numpy")
    got = fastconv.conv2d(x, w, None, **kw, backend=backend, algorithm=algorithm)
    assert_close(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_conv_empty_batch(backend, layout):
    x = np.zeros((0, 3, 5, 5) if layout == "NCHW" else (0, 5, 5, 3), np.float32)
    y = fastconv.conv2d(x, np.ones((4, 3, 3, 3), np.float32), backend=backend, layout=layout)
    assert y.shape == ((0, 4, 3, 3) if layout == "NCHW" else (0, 3, 3, 4))
    assert y.dtype == np.float32


@st.composite
def conv_problems(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c = groups * draw(st.integers(1, 3))
    k = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad = tuple(draw(st.integers(0, 2)) for _ in range(4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    min_h = max(1, dil[0] * (kh - 1) + 1 - pad[0] - pad[1])
    min_w = max(1, dil[1] * (kw - 1) + 1 - pad[2] - pad[3])
    h = draw(st.integers(min_h, min_h + 6))
    w = draw(st.integers(min_w, min_w + 6))
    n = draw(st.integers(0, 2))
    return dict(n=n, c=c, h=h, w=w, k=k, kh=kh, kw=kw, stride=stride,
                padding=((pad[0], pad[1]), (pad[2], pad[3])), dilation=dil, groups=groups)


@settings(max_examples=40, deadline=None)
@given(prob=conv_problems(), backend=st.sampled_from(BACKENDS),
       algorithm=st.sampled_from(ALGORITHMS), layout=st.sampled_from(["NCHW", "NHWC"]),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
def test_conv_hypothesis(prob, backend, algorithm, layout, dtype, seed):
    rng = np.random.default_rng(seed)
    shape = (prob["n"], prob["c"], prob["h"], prob["w"])
    if layout == "NHWC":
        shape = (shape[0], shape[2], shape[3], shape[1])
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((prob["k"], prob["c"] // prob["groups"], prob["kh"], prob["kw"]))
    w, b = w.astype(dtype), rng.standard_normal(prob["k"]).astype(dtype)
    kw = dict(stride=prob["stride"], padding=prob["padding"], dilation=prob["dilation"],
              groups=prob["groups"], layout=layout)
    want = fastconv.conv2d(x, w, b, **kw, backend="numpy")
    got = fastconv.conv2d(x, w, b, **kw, backend=backend, algorithm=algorithm)
    assert_close(got, want, dtype)
