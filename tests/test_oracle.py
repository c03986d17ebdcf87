"""The oracle itself, against an independent formulation: explicit loops over
every output element, straight from the definition of cross-correlation."""
import itertools

import numpy as np
import pytest

import fastconv
from fastconv import _args
from fastconv.backends import reference


def conv_by_definition(x, w, b, stride, pad, dil, groups):
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    (sh, sw), (dh, dw) = stride, dil
    t, bo, l, r = pad
    oh = (h + t + bo - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + l + r - dw * (kw - 1) - 1) // sw + 1
    kg = k // groups
    y = np.zeros((n, k, oh, ow))
    for ni, ko, oy, ox in itertools.product(range(n), range(k), range(oh), range(ow)):
        g = ko // kg
        s = 0.0 if b is None else float(b[ko])
        for ci, i, j in itertools.product(range(cg), range(kh), range(kw)):
            iy, ix = oy * sh - t + i * dh, ox * sw - l + j * dw
            if 0 <= iy < h and 0 <= ix < wd:
                s += float(x[ni, g * cg + ci, iy, ix]) * float(w[ko, ci, i, j])
        y[ni, ko, oy, ox] = s
    return y


CASES = [
    # (n, c, h, w, k, kh, kw, stride, padding, dilation, groups)
    (1, 1, 1, 1, 1, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),
    (2, 3, 5, 6, 4, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (1, 2, 7, 5, 2, 2, 3, (3, 2), (0, 1, 2, 0), (1, 1), 1),
    (1, 4, 6, 6, 6, 3, 2, (1, 2), (2, 0, 0, 1), (2, 1), 2),
    (2, 4, 5, 5, 4, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 4),
    (1, 3, 4, 4, 2, 4, 4, (1, 1), (0, 0, 0, 0), (1, 1), 1),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_oracle_matches_definition(case, layout):
    n, c, h, w, k, kh, kw, stride, pad, dil, groups = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((k, c // groups, kh, kw))
    b = rng.standard_normal(k)
    want = conv_by_definition(x, wt, b, stride, pad, dil, groups)
    xin = x if layout == "NCHW" else x.transpose(0, 2, 3, 1)
    got = fastconv.conv2d(xin, wt, b, stride, ((pad[0], pad[1]), (pad[2], pad[3])), dil, groups,
                          backend="numpy", layout=layout)
    if layout == "NHWC":
        got = got.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_oracle_gemm_accumulates_in_float64():
    # 1 + 1e-8 - 1 is lost in float32 arithmetic but kept by a float64 accumulator.
    a = np.array([[1.0, 1e-8, -1.0]], np.float32)
    b = np.ones((3, 1), np.float32)
    out = np.empty((1, 1), np.float32)
    reference.gemm(a, b, out)
    assert out[0, 0] == np.float32(np.float64(np.float32(1e-8)))


def test_oracle_relu_keeps_nan():
    x, w, _, p = _args.conv2d_args(np.array([[[[np.nan, -1.0, 2.0]]]]), np.ones((1, 1, 1, 1)),
                                   None, 1, 0, 1, 1, "NCHW")
    out = np.empty(p.out_shape)
    reference.conv2d(x, w, None, p, None, out, 0, relu=True)
    assert np.isnan(out[0, 0, 0, 0]) and out[0, 0, 0, 1] == 0 and out[0, 0, 0, 2] == 2
