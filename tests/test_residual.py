"""A residual added in the conv's store (conv2d(..., residual=r): act(conv(x) + r)),
against torch (conv2d + add + activation in float64) on every backend,
algorithm, layout and C ISA; in place over the residual (out=residual); a
Graph's Conv + Add (+ ReLU) fused into one call, in place only into a dead,
unshared skip buffer; bad residuals."""
import numpy as np
import pytest

import fastconv
from fastconv import nn
from checks import DTYPES_F64_SLOW
from isas import using_isa

from test_graph import conv_ref, rand
from test_prelu import SHAPES, algorithms, close, isas

BACKENDS = ("c", "numba", "numpy")
# Beyond test_prelu's shapes: a 1x1 conv whose GEMM runs per image (batch 3),
# a full-size conv (an FC layer's GEMM) and a GEMV-shaped one (one output pixel).
MORE = [(3, 7, 5, 6, 9, 1, 1, 0, 1), (2, 4, 5, 5, 6, 5, 1, 0, 1), (1, 64, 1, 1, 5, 1, 1, 0, 1)]


def ref(x, w, b, stride, padding, groups, r, act):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    t = [torch.from_numpy(np.asarray(a, np.float64)) for a in (x, w, b, r)]
    y = F.conv2d(t[0], t[1], t[2], stride=stride, padding=padding, groups=groups) + t[3]
    if act == "relu":
        y = F.relu(y)
    elif act == "relu6":
        y = F.hardtanh(y, 0.0, 6.0)
    elif act == "prelu":
        y = torch.where(y < 0, y * t[3].new_tensor(np.linspace(0.1, 0.4, w.shape[0]))
                        .reshape(1, -1, 1, 1), y)
    return y.numpy()


def act_kwargs(act, k, dtype):
    return {"relu": {"relu": True}, "relu6": {"relu": True, "clip_max": 6.0},
            "prelu": {"negative_slope": np.linspace(0.1, 0.4, k).astype(dtype)},
            None: {}}[act]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES_F64_SLOW)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_conv2d_residual_matches_torch(backend, dtype, layout):
    rng = np.random.default_rng(11)
    for n, c, h, w, k, kk, stride, padding, groups in SHAPES + MORE:
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
        weight = rng.standard_normal((k, c // groups, kk, kk)).astype(dtype)
        bias = rng.standard_normal(k).astype(dtype)
        oh, ow = (h + 2 * padding - kk) // stride + 1, (w + 2 * padding - kk) // stride + 1
        r = (3 * rng.standard_normal((n, k, oh, ow))).astype(dtype)
        for act in (None, "relu", "relu6", "prelu"):
            want = ref(x, weight, bias, stride, padding, groups, r, act)
            xin, rin = ((x, r) if layout == "NCHW" else
                        (x.transpose(0, 2, 3, 1), np.ascontiguousarray(r.transpose(0, 2, 3, 1))))
            for isa in isas(backend):
                for algo in algorithms(backend, kk, stride, groups):
                    with using_isa(isa):
                        got = fastconv.conv2d(xin, weight, bias, stride, padding, groups=groups,
                                              algorithm=algo, backend=backend, layout=layout,
                                              residual=rin, **act_kwargs(act, k, dtype))
                    if layout == "NHWC":
                        got = got.transpose(0, 3, 1, 2)
                    tol = 1e-4 if algo == "winograd" and dtype == np.float32 else None
                    assert (np.allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
                            if tol else close(got, want, dtype)), \
                        (backend, isa, algo, act, n, c, h, w, k, kk, stride, groups)


@pytest.mark.parametrize("backend", BACKENDS)
def test_residual_in_place_and_broadcast(backend):
    rng = np.random.default_rng(12)
    x, w, b = rand(rng, 2, 8, 6, 5), rand(rng, 16, 8, 1, 1), rand(rng, 16)
    for weight in (w, rand(rng, 16, 8, 3, 3)):    # a GEMM and a direct conv
        pad = weight.shape[2] // 2
        want = np.maximum(conv_ref(x, weight, b, pad) + 1.5, 0)
        skip = np.full((2, 16, 6, 5), 1.5, np.float32)
        got = fastconv.conv2d(x, weight, b, padding=pad, backend=backend, relu=True,
                              residual=skip, out=skip)
        assert got is skip
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        # A residual broadcast over the batch and the pixels (one per channel).
        chan = rand(rng, 16, 1, 1)
        got = fastconv.conv2d(x, weight, b, padding=pad, backend=backend, residual=chan)
        np.testing.assert_allclose(got, conv_ref(x, weight, b, pad) + chan, rtol=1e-5,
                                   atol=1e-5)
    # The residual is the input itself (a 1x1 conv K = C): out=x must not clobber
    # x while the conv still reads it.
    xs = rand(rng, 2, 8, 4, 4)
    want = conv_ref(xs, rand(np.random.default_rng(0), 8, 8, 1, 1)) + xs
    got = fastconv.conv2d(xs, rand(np.random.default_rng(0), 8, 8, 1, 1), backend=backend,
                          residual=xs, out=xs)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_bad_residual():
    rng = np.random.default_rng(13)
    x, w = rand(rng, 1, 4, 5, 5), rand(rng, 6, 4, 1, 1)
    with pytest.raises(ValueError, match="residual must broadcast"):
        fastconv.conv2d(x, w, residual=np.zeros((1, 6, 4, 5), np.float32))
    with pytest.raises(ValueError, match="residual must broadcast"):
        fastconv.conv2d(x, w, residual=np.zeros((2, 6, 5, 5), np.float32))  # grows the output
    with pytest.raises(TypeError, match="residual"):
        fastconv.conv2d(x, w, residual=np.zeros((1, 6, 5, 5), np.float64))
    with pytest.raises(TypeError, match="residual"):
        fastconv.conv2d(x, w, residual="skip")


def bottleneck(rng, c=8, mid=4):
    """x -> 1x1 (ReLU) -> 3x3 (ReLU) -> 1x1, + skip, ReLU; the skip is a 1x1
    projection of x (dead after the Add) or x itself (a graph input)."""
    ws = [rand(rng, mid, c, 1, 1), rand(rng, mid, mid, 3, 3), rand(rng, c, mid, 1, 1),
          rand(rng, c, c, 1, 1)]
    bs = [rand(rng, mid), rand(rng, mid), rand(rng, c), rand(rng, c)]

    def graph(project):
        nodes = [(nn.Conv2d(ws[0], bs[0]), "x", "a"), (nn.ReLU(), "a", "a1"),
                 (nn.Conv2d(ws[1], bs[1], padding=1), "a1", "b"), (nn.ReLU(), "b", "b1"),
                 (nn.Conv2d(ws[2], bs[2]), "b1", "m")]
        skip = "x"
        if project:
            nodes.append((nn.Conv2d(ws[3], bs[3]), "x", "p"))
            skip = "p"
        nodes += [(nn.Add(), ["m", skip], "s"), (nn.ReLU(), "s", "y")]
        return nn.Graph(nodes, "x", "y")

    def want(x, project):
        a = np.maximum(conv_ref(x, ws[0], bs[0]), 0)
        b = np.maximum(conv_ref(a, ws[1], bs[1], 1), 0)
        skip = conv_ref(x, ws[3], bs[3]) if project else x
        return np.maximum(conv_ref(b, ws[2], bs[2]) + skip, 0)
    return graph, want


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("project", [False, True])
def test_graph_fuses_the_residual_add(backend, project):
    rng = np.random.default_rng(14)
    graph, want = bottleneck(rng)
    g = graph(project)
    assert not any(isinstance(n.layer, nn.Add) for n in g.nodes)
    fused = [n for n in g.nodes if n.residual]
    assert len(fused) == 1 and fused[0].relu and fused[0].outputs == ("y",)
    assert "+ ReLU" in fused[0].describe()
    for n in (1, 3):
        x = rand(rng, n, 8, 6, 7)
        x0 = x.copy()
        with fastconv.config(backend=backend):
            got = g(x)
        np.testing.assert_allclose(got, want(x, project), rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(x, x0)       # the graph input is never written
    # Shapes and FLOPs: each conv's, at its own input (the residual adds no shape).
    shapes, total = {"x": (8, 6, 7)}, 0
    for node in g.nodes:
        total += node.layer.flops(shapes[node.inputs[0]])
        shapes[node.outputs[0]] = node.layer.output_shape(shapes[node.inputs[0]])
    assert g.output_shape((8, 6, 7)) == (8, 6, 7) and g.flops((8, 6, 7)) == total > 0


def test_graph_residual_in_place_only_into_a_dead_unshared_skip():
    rng = np.random.default_rng(15)
    w1, w2 = rand(rng, 4, 4, 1, 1), rand(rng, 4, 4, 1, 1)
    # "p" is added by the conv of "x" and read again afterwards: not written over.
    g = nn.Graph([(nn.Conv2d(w1), "x", "p"), (nn.Conv2d(w2), "x", "m"),
                  (nn.Add(), ["m", "p"], "s"), (nn.Add(), ["s", "p"], "y")], "x", "y")
    x = rand(rng, 2, 4, 3, 3)
    p, m = conv_ref(x, w1), conv_ref(x, w2)
    np.testing.assert_allclose(g(x), m + 2 * p, rtol=1e-5, atol=1e-5)
    # A conv output that is also a graph output keeps its own value.
    g = nn.Graph([(nn.Conv2d(w2), "x", "m"), (nn.Add(), ["m", "x"], "y")], "x", ["m", "y"])
    got_m, got_y = g(x)
    np.testing.assert_allclose(got_m, m, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_y, m + x, rtol=1e-5, atol=1e-5)
    assert not any(n.residual for n in g.nodes)
    # The Add's other input broadcasts (a constant per channel): still one call.
    c = rand(rng, 1, 4, 1, 1)
    g = nn.Graph([(nn.Conv2d(w2), "x", "m"), (nn.Add(), ["c", "m"], "y")], "x", "y",
                 constants={"c": c})
    assert [n.residual for n in g.nodes] == [True]
    np.testing.assert_allclose(g(x), m + c, rtol=1e-5, atol=1e-5)


def test_summary_of_a_fused_residual_graph():
    graph, _ = bottleneck(np.random.default_rng(16))
    g = graph(True)
    text = str(nn.summary(g, (8, 6, 7)))
    assert "+ p + ReLU" in text          # the fused node names the value it adds
    assert g.params() == sum(n.layer.params() for n in g.nodes) == 8 * 4 + 4 + 4 * 4 * 9 + 4 \
        + 4 * 8 + 8 + 8 * 8 + 8
