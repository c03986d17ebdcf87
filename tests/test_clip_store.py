"""ReLU6 in the kernels' store (relu=True, clip_max=): conv2d and linear
against torch's hardtanh(conv2d(...), 0, hi) / a float64 loop, every backend,
algorithm, layout and C ISA; the fused store bit for bit against the same
call followed by np.minimum (what a graph ran before); a loaded graph's
Conv + Clip(0, 6); bad bounds."""
import numpy as np
import pytest

import fastconv
from fastconv import nn
from isas import c_isas, using_isa

from test_prelu import SHAPES, algorithms, close, isas

BACKENDS = ("c", "numba", "numpy")


def ref_relu6(x, w, b, stride, padding, groups, hi):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    t = [torch.from_numpy(a.astype(np.float64)) for a in (x, w, b)]
    y = F.conv2d(t[0], t[1], t[2], stride=stride, padding=padding, groups=groups)
    return F.hardtanh(y, 0.0, hi).numpy()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_conv2d_matches_torch(backend, dtype, layout):
    rng = np.random.default_rng(8)
    for n, c, h, w, k, kk, stride, padding, groups in SHAPES:
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
        weight = rng.standard_normal((k, c // groups, kk, kk)).astype(dtype)
        bias = rng.standard_normal(k).astype(dtype)
        want = ref_relu6(x, weight, bias, stride, padding, groups, 1.5)  # many clamped
        assert want.size < 10 or ((want == 1.5).any() and (want == 0).any())
        xin = x if layout == "NCHW" else x.transpose(0, 2, 3, 1)
        for isa in isas(backend):
            for algo in algorithms(backend, kk, stride, groups):
                with using_isa(isa):
                    y = fastconv.conv2d(xin, weight, bias, stride, padding, 1, groups,
                                        algorithm=algo, backend=backend, layout=layout,
                                        relu=True, clip_max=1.5)
                got = y if layout == "NCHW" else y.transpose(0, 3, 1, 2)
                assert close(got, want, dtype), (backend, isa, algo, layout, n, c, h, w, k, kk)


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_matches_a_loop(backend):
    rng = np.random.default_rng(4)
    for m, kdim, nout in [(1, 100, 30), (5, 64, 17), (40, 33, 50), (3, 0, 5), (1, 25, 1),
                          (2, 300, 1)]:
        x = rng.standard_normal((m, kdim)).astype(np.float32)
        w = rng.standard_normal((nout, kdim)).astype(np.float32)
        b = rng.standard_normal(nout).astype(np.float32) * 3
        want = np.array([[min(max(sum(float(x[i, p]) * float(w[j, p]) for p in range(kdim))
                                  + float(b[j]), 0.0), 2.0) for j in range(nout)]
                         for i in range(m)])
        for isa in isas(backend):
            with using_isa(isa):
                got = fastconv.linear(x, w, b, backend=backend, relu=True, clip_max=2.0)
            assert close(got, want, np.float32), (backend, isa, m, kdim, nout)


@pytest.mark.parametrize("algo", ["direct", "im2col", "auto", "winograd"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_fused_store_is_bit_identical_to_a_separate_pass(algo, layout):
    rng = np.random.default_rng(12)
    for n, c, h, w, k, kk, stride, padding, groups in SHAPES:
        if algo not in algorithms("c", kk, stride, groups):
            continue
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        x.flat[::17] = np.nan
        x = x if layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        weight = rng.standard_normal((k, c // groups, kk, kk)).astype(np.float32)
        bias = rng.standard_normal(k).astype(np.float32)
        for isa in c_isas():
            for hi in (6.0, 0.7, 1e-30, np.inf):
                with using_isa(isa):
                    plain = fastconv.conv2d(x, weight, bias, stride, padding, 1, groups,
                                            algorithm=algo, backend="c", relu=True,
                                            layout=layout)
                    fused = fastconv.conv2d(x, weight, bias, stride, padding, 1, groups,
                                            algorithm=algo, backend="c", relu=True,
                                            clip_max=hi, layout=layout)
                np.minimum(plain, hi, out=plain)
                assert np.array_equal(fused, plain, equal_nan=True), (isa, algo, c, k, kk, hi)
    for m in (1, 3, 20):    # linear: the GEMV (batch 1) and the GEMM
        x = rng.standard_normal((m, 70)).astype(np.float32)
        w = rng.standard_normal((33, 70)).astype(np.float32)
        for isa in c_isas():
            with using_isa(isa):
                plain = fastconv.linear(x, w, relu=True)
                fused = fastconv.linear(x, w, relu=True, clip_max=0.5)
            assert np.array_equal(fused, np.minimum(plain, 0.5))


def test_nan_passes_and_the_bounds_are_checked():
    x = np.array([[[[np.nan, -1.0, 2.0, 9.0, -0.0]]]], np.float32)
    w = np.ones((1, 1, 1, 1), np.float32)
    for backend in BACKENDS:
        y = fastconv.conv2d(x, w, backend=backend, relu=True, clip_max=6)
        assert np.isnan(y[0, 0, 0, 0]) and y[0, 0, 0, 1:].tolist() == [0.0, 2.0, 6.0, 0.0]
    for bad, err in ((0, ValueError), (-1.0, ValueError), (np.nan, ValueError),
                     ("6", TypeError), (True, TypeError)):
        with pytest.raises(err, match="clip_max"):
            fastconv.conv2d(x, w, relu=True, clip_max=bad)
    with pytest.raises(ValueError, match="relu=True"):
        fastconv.conv2d(x, w, clip_max=6)
    with pytest.raises(ValueError, match="relu=True"):
        fastconv.linear(np.ones((1, 3), np.float32), np.ones((2, 3), np.float32),
                        negative_slope=0.1, clip_max=6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_graph_clamps_conv_relu6_in_the_store(backend):
    """Conv2d + Clip(0, 6) in a Graph: one fused call, equal to the layers one by one."""
    rng = np.random.default_rng(6)
    conv = nn.Conv2d(rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 3,
                     rng.standard_normal(8).astype(np.float32), padding=1)
    dw = nn.Conv2d(rng.standard_normal((8, 1, 3, 3)).astype(np.float32) * 3, padding=1,
                   groups=8)
    g = nn.Graph([nn.Node(conv, ["x"], ["a"]), nn.Node(nn.Clip(0, 6), ["a"], ["b"]),
                  nn.Node(dw, ["b"], ["c"]), nn.Node(nn.Clip(0.0, 6.0), ["c"], ["y"])],
                 ["x"], ["y"])
    assert [n.clip_max for n in g.nodes] == [6.0, 6.0]
    x = rng.standard_normal((2, 3, 9, 10)).astype(np.float32)
    with fastconv.config(backend=backend):
        got = g(x)
        want = nn.Clip(0, 6)(dw(nn.Clip(0, 6)(conv(x))))
    assert (got == 6).any()
    np.testing.assert_array_equal(got, want)
