"""nn.Graph built by hand, the graph layers, and compress_fc, against NumPy
written from the definitions (float64)."""
import gc
import weakref

import numpy as np
import pytest

import fastconv
from fastconv import nn


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def conv_ref(x, w, b=None, pad=0):
    """Direct float64 convolution, stride 1: the definition, one tap at a time."""
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k, c, kh, kw = w.shape
    oh, ow = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    y = np.zeros((x.shape[0], k, oh, ow))
    for i in range(kh):
        for j in range(kw):
            y += np.einsum("nchw,kc->nkhw", x[:, :, i:i + oh, j:j + ow], w[:, :, i, j])
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def residual_block(rng, c=4):
    w1, b1, w2 = rand(rng, c, c, 3, 3), rand(rng, c), rand(rng, c, c, 3, 3)
    nodes = [  # deliberately out of order: the graph sorts them
        nn.Node(nn.Add(), ["h2", "x"], ["s"], "add"),
        nn.Node(nn.ReLU(), ["s"], ["y"], "relu_out"),
        nn.Node(nn.Conv2d(w1, b1, padding=1), ["x"], ["h"], "conv1"),
        nn.Node(nn.ReLU(), ["h"], ["h1"], "relu1"),
        nn.Node(nn.Conv2d(w2, None, padding=1), ["h1"], ["h2"], "conv2"),
    ]
    g = nn.Graph(nodes, inputs=["x"], outputs=["y"])

    def ref(x):
        h = np.maximum(conv_ref(x, w1, b1, 1), 0)
        return np.maximum(conv_ref(h, w2, None, 1) + x, 0)
    return g, ref


@pytest.mark.parametrize("backend", ["c", "numba", "numpy"])
def test_residual_block_matches_definition(backend):
    rng = np.random.default_rng(0)
    g, ref = residual_block(rng)
    x = rand(rng, 2, 4, 7, 6)
    with fastconv.config(backend=backend):
        y = g(x)
    np.testing.assert_allclose(y, ref(x), rtol=1e-4, atol=1e-4)


def test_sorting_fusion_and_pruning():
    rng = np.random.default_rng(1)
    g, _ = residual_block(rng)
    # conv2 takes the Add (its other input "x" as the residual) and the closing ReLU.
    assert [n.name for n in g.nodes] == ["conv1", "conv2"]
    assert g.nodes[0].relu and g.nodes[0].outputs == ("h1",) and not g.nodes[0].residual
    assert g.nodes[1].residual and g.nodes[1].inputs == ("h1", "x")
    assert g.nodes[1].relu and g.nodes[1].outputs == ("y",)
    # A node no output needs is dropped; one a graph output reads is not fused.
    w = rand(rng, 2, 2, 1, 1)
    g = nn.Graph([("c", nn.Conv2d(w), ["x"], ["a"]), ("r", nn.ReLU(), ["a"], ["b"]),
                  ("dead", nn.Sigmoid(), ["x"], ["unused"])], ["x"], ["a", "b"])
    assert [n.name for n in g.nodes] == ["c", "r"] and not g.nodes[0].relu


def test_add_in_place_only_into_dead_unshared_buffers():
    rng = np.random.default_rng(5)
    g, ref = residual_block(rng)
    x = rand(rng, 2, 4, 6, 6)
    x0 = x.copy()
    np.testing.assert_allclose(g(x), ref(x), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(x, x0)          # the caller's input is never a buffer
    # "v" (a view of "a") dies at the Add, but "a" is read later: no in-place write
    # into v; "a" itself dies at the second Add and takes that sum.
    w = rand(rng, 3, 3, 1, 1)
    g = nn.Graph([(nn.Conv2d(w), "x", "a"), (nn.Reshape((0, 3, -1)), "a", "v"),
                  (nn.Add(), ["v", "c"], "s"), (nn.Reshape((0, 3, 6, 6)), "s", "s4"),
                  (nn.Add(), ["a", "s4"], "t"), (nn.ReLU(), "t", "y")], "x", ["y", "s"],
                 constants={"c": rand(rng, 3, 1)})
    x = rand(rng, 2, 3, 6, 6)
    a = np.einsum("nchw,kc->nkhw", x.astype(np.float64), w[:, :, 0, 0])
    s_ = a.reshape(2, 3, -1) + g.constants["c"]
    y, s_got = g(x)
    np.testing.assert_allclose(s_got, s_, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y, np.maximum(a + s_.reshape(a.shape), 0), rtol=1e-5, atol=1e-5)
    assert g.nodes[-1].relu and g.nodes[-1].outputs == ("y",)


def test_concat_of_convs_written_in_place():
    rng = np.random.default_rng(6)
    w1, w2, w3, b2 = rand(rng, 3, 4, 1, 1), rand(rng, 5, 4, 3, 3), rand(rng, 2, 4, 1, 1), rand(rng, 5)
    g = nn.Graph([(nn.Conv2d(w1), "x", "a"), (nn.ReLU(), "a", "ar"),
                  (nn.Conv2d(w2, b2, padding=1), "x", "b"),
                  (nn.MaxPool(3, 1, 1), "x", "p"), (nn.Conv2d(w3), "p", "c"),
                  (nn.Concat(1), ["ar", "b", "c"], "y")], "x", "y")
    assert sorted(g._slots.values()) == [("y", 0, 3, 10), ("y", 3, 8, 10), ("y", 8, 10, 10)]
    for n in (1, 2):   # batch 2: the slices are not contiguous (written through a copy)
        x = rand(rng, n, 4, 5, 6)
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
        pooled = np.max([xp[:, :, i:i + 5, j:j + 6] for i in range(3) for j in range(3)], 0)
        want = np.concatenate([np.maximum(conv_ref(x, w1), 0), conv_ref(x, w2, b2, 1),
                               conv_ref(pooled, w3)], axis=1)
        np.testing.assert_allclose(g(x), want, rtol=1e-4, atol=1e-4)
    # A conv output something else reads too, or a non-conv input: Concat copies.
    g = nn.Graph([(nn.Conv2d(w1), "x", "a"), (nn.Conv2d(w3), "x", "c"),
                  (nn.Concat(1), ["a", "c", "x"], "y"), (nn.Sigmoid(), "a", "s")],
                 "x", ["y", "s"])
    assert g._slots == {}
    x = rand(rng, 1, 4, 5, 6)
    y, _ = g(x)
    np.testing.assert_allclose(y, np.concatenate([conv_ref(x, w1), conv_ref(x, w3), x], 1),
                               rtol=1e-4, atol=1e-4)
    # Branches of different sizes: the Concat's own error.
    g = nn.Graph([(nn.Conv2d(w1), "x", "a"), (nn.Conv2d(w2), "x", "b"),
                  (nn.Concat(1), ["a", "b"], "y")], "x", "y")
    with pytest.raises(ValueError, match="Concat along axis 1"):
        g(x)


def test_clip_after_conv_runs_in_its_store():
    rng = np.random.default_rng(2)
    w = rand(rng, 3, 2, 3, 3)
    g = nn.Graph([(nn.Conv2d(w), "x", "a"), (nn.Clip(0, 0.5), "a", "y")], "x", "y")
    assert len(g.nodes) == 1 and g.nodes[0].relu and g.nodes[0].clip_max == 0.5
    x = rand(rng, 2, 2, 6, 6)
    np.testing.assert_allclose(g(x), np.clip(conv_ref(x, w), 0, 0.5), rtol=1e-5, atol=1e-5)


def test_prelu_and_leaky_relu_after_conv_and_linear_run_in_the_store():
    rng = np.random.default_rng(4)
    w, b, slope = rand(rng, 3, 2, 3, 3), rand(rng, 3), np.float32([0.1, -0.5, 2.0])
    fw = rand(rng, 5, 3 * 4 * 4)
    g = nn.Graph([(nn.Conv2d(w, b), "x", "a"), (nn.PReLU(slope), "a", "p"),
                  (nn.Flatten(), "p", "f"), (nn.Linear(fw), "f", "l"),
                  (nn.LeakyReLU(0.2), "l", "y")], "x", "y")
    conv, _, fc = g.nodes
    assert conv.outputs == ("p",) and np.array_equal(conv.negative_slope, slope)
    assert fc.outputs == ("y",) and fc.negative_slope == 0.2 and "PReLU" in fc.describe()
    x = rand(rng, 2, 2, 6, 6)
    h = conv_ref(x, w, b)
    h = np.where(h < 0, h * slope.reshape(1, -1, 1, 1), h).reshape(2, -1) @ fw.T.astype(np.float64)
    want = np.where(h < 0, 0.2 * h, h)
    for backend in ("c", "numba", "numpy"):
        with fastconv.config(backend=backend):
            np.testing.assert_allclose(g(x), want, rtol=1e-4, atol=1e-4)
    # A PReLU whose slopes do not match the conv's channels stays a node of its own.
    g = nn.Graph([(nn.Conv2d(w), "x", "a"), (nn.PReLU(np.ones(2, np.float32)), "a", "y")],
                 "x", "y")
    assert len(g.nodes) == 2


def test_several_inputs_and_outputs():
    rng = np.random.default_rng(3)
    g = nn.Graph([(nn.Concat(1), ["a", "b"], "c"), (nn.Sub(), ["a", "b"], "d"),
                  (nn.GlobalMaxPool2d(), "c", "m")], inputs=["a", "b"], outputs=["m", "d"])
    a, b = rand(rng, 2, 3, 4, 5), rand(rng, 2, 3, 4, 5)
    m, d = g(a, b)
    np.testing.assert_array_equal(m[:, :3, 0, 0], a.max(axis=(2, 3)))
    np.testing.assert_array_equal(m[:, 3:, 0, 0], b.max(axis=(2, 3)))
    np.testing.assert_array_equal(d, a - b)
    assert g.output_shape((3, 4, 5), (3, 4, 5)) == ((6, 1, 1), (3, 4, 5))
    with pytest.raises(TypeError, match="takes 2 input"):
        g(a)


class Probe(nn.Module):
    """Identity that remembers its output weakly, or checks a remembered one is gone."""

    def __init__(self, seen, check=None):
        self.seen, self.check = seen, check

    def forward(self, x):
        if self.check is not None:
            gc.collect()
            self.seen["alive_at_check"] = self.seen[self.check]() is not None
        y = x + 1
        self.seen.setdefault(self.check or "first", weakref.ref(y))
        return y


def test_activations_are_freed_after_their_last_reader():
    seen = {}
    g = nn.Graph([(Probe(seen), "x", "a"), (nn.ReLU(), "a", "b"), (Probe(seen, "first"), "b", "y")],
                 "x", "y")
    g(np.zeros((1, 2), np.float32))
    assert seen["alive_at_check"] is False   # "a" was dropped once ReLU had read it
    seen.clear()
    keep = nn.Graph([(Probe(seen), "x", "a"), (nn.ReLU(), "a", "b"),
                     (Probe(seen, "first"), "b", "y")], "x", ["y", "a"])
    keep(np.zeros((1, 2), np.float32))
    assert seen["alive_at_check"] is True    # a graph output is kept


def test_bad_graphs():
    relu = nn.ReLU()
    with pytest.raises(ValueError, match=r"cycle through nodes \['n1', 'n2'\]|cycle"):
        nn.Graph([("n1", relu, ["b"], ["a"]), ("n2", relu, ["a"], ["b"]),
                  ("n3", nn.Add(), ["a", "x"], ["y"])], ["x"], ["y"])
    with pytest.raises(ValueError, match="reads 'z'"):
        nn.Graph([(relu, "z", "y")], "x", "y")
    with pytest.raises(ValueError, match="produced twice"):
        nn.Graph([(relu, "x", "y"), (relu, "x", "y")], "x", "y")
    with pytest.raises(ValueError, match="output 'q'"):
        nn.Graph([(relu, "x", "y")], "x", "q")
    with pytest.raises(TypeError, match="fastconv.nn Module"):
        nn.Graph([(np.abs, "x", "y")], "x", "y")
    g = nn.Graph([(nn.Conv2d(np.ones((2, 3, 3, 3), np.float32)), "x", "y")], "x", "y",
                 input_shapes=[(None, 3, None, None)])
    with pytest.raises(ValueError, match="must have 3 channels"):
        g(np.zeros((1, 2, 5, 5), np.float32))
    with pytest.raises(ValueError, match="4-D"):
        g(np.zeros((2, 5, 5), np.float32))


def test_params_flops_summary_match_sequential():
    rng = np.random.default_rng(4)
    layers = [nn.Conv2d(rand(rng, 4, 2, 3, 3), rand(rng, 4)), nn.ReLU(), nn.MaxPool2d(2),
              nn.Flatten(), nn.Linear(rand(rng, 5, 4 * 3 * 3), rand(rng, 5)), nn.Softmax()]
    seq = nn.Sequential(*layers)
    names = ["x"] + [f"v{i}" for i in range(len(layers))]
    g = nn.Graph([(layer, names[i], names[i + 1]) for i, layer in enumerate(layers)],
                 "x", names[-1])
    shape = (2, 8, 8)
    assert g.output_shape(shape) == seq.output_shape(shape) == (5,)
    assert g.params() == seq.params() == 4 * 2 * 9 + 4 + 5 * 36 + 5
    assert g.flops(shape) == seq.flops(shape) == 2 * 4 * 6 * 6 * 18 + 2 * 5 * 36
    s = nn.summary(g, shape)
    assert s.params == g.params() and s.fc_params == 5 * 36 + 5
    assert "Conv2d(2\u21924, 3\u00d73) + ReLU" in str(s)
    x = rand(rng, 3, 2, 8, 8)
    np.testing.assert_allclose(g(x), seq(x), rtol=1e-6)
    fcn = nn.to_fully_convolutional(g, shape)
    big = rand(rng, 1, 2, 12, 10)
    out = fcn(big)
    assert out.shape == (1, 5, 3, 2)
    # Window (i, j) at stride 2 (the max pool's) is the classifier on that crop.
    crops = np.stack([big[0, :, 2 * i:2 * i + 8, 2 * j:2 * j + 8] for i in range(3)
                      for j in range(2)])
    np.testing.assert_allclose(out[0].transpose(1, 2, 0).reshape(6, 5), g(crops),
                               rtol=1e-5, atol=1e-6)


# -- layers -----------------------------------------------------------------------------

def test_batchnorm_matches_formula_and_validates():
    rng = np.random.default_rng(5)
    s, b, m, v = rand(rng, 3), rand(rng, 3), rand(rng, 3), np.abs(rand(rng, 3)) + 0.1
    x = rand(rng, 2, 3, 4, 4)
    want = (x - m[:, None, None]) / np.sqrt(v[:, None, None] + 1e-3) * s[:, None, None] + \
        b[:, None, None]
    np.testing.assert_allclose(nn.BatchNorm2d(s, b, m, v, 1e-3)(x), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="var must be shape"):
        nn.BatchNorm2d(s, b, m, v[:2])
    with pytest.raises(ValueError, match="var \\+ eps must be positive"):
        nn.BatchNorm2d(s, b, m, -np.ones(3), 0.0)
    with pytest.raises(ValueError, match="3 channels"):
        nn.BatchNorm2d(s, b, m, v)(rand(rng, 2, 4, 2, 2))
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.BatchNorm2d(s, b, m, v)(np.zeros((1, 3, 2, 2), np.int64))


def test_lrn_matches_loop():
    rng = np.random.default_rng(6)
    x = rand(rng, 2, 7, 3, 3)
    size, alpha, beta, bias = 5, 1e-2, 0.75, 2.0
    want = np.empty_like(x, dtype=np.float64)
    for c in range(7):
        lo, hi = max(0, c - 2), min(7, c + 3)
        sq = (x[:, lo:hi].astype(np.float64) ** 2).sum(axis=1)
        want[:, c] = x[:, c] / (bias + alpha / size * sq) ** beta
    np.testing.assert_allclose(nn.LRN(size, alpha, beta, bias)(x), want, rtol=1e-5)
    with pytest.raises(ValueError, match="size"):
        nn.LRN(0)


def test_elementwise_layers():
    x = np.linspace(-8, 8, 33, dtype=np.float32).reshape(1, 33)
    np.testing.assert_allclose(nn.HardSwish()(x), x * np.clip(x + 3, 0, 6) / 6, rtol=1e-6,
                               atol=1e-7)
    np.testing.assert_allclose(nn.Sigmoid()(x), 1 / (1 + np.exp(-x.astype(np.float64))),
                               rtol=1e-6)
    np.testing.assert_array_equal(nn.LeakyReLU(0.5)(x), np.where(x > 0, x, 0.5 * x))
    np.testing.assert_array_equal(nn.Clip(-1, 2)(x), np.clip(x, -1, 2))
    with pytest.raises(ValueError, match="low"):
        nn.Clip(3, 2)
    np.testing.assert_array_equal(nn.Div().forward(np.array([7, -7]), np.array([2, 2])),
                                  [3, -3])   # ONNX integer division truncates
    np.testing.assert_array_equal(nn.Add().forward(np.ones((2, 3, 1, 1)), np.arange(4.0)),
                                  1 + np.arange(4.0) + np.zeros((2, 3, 1, 4)))
    with pytest.raises(ValueError, match="Concat along axis 1"):
        nn.Concat(1).forward(np.zeros((1, 2, 3)), np.zeros((1, 2, 4)))


def test_pool_validation():
    with pytest.raises(ValueError, match="smaller than the window"):
        nn.MaxPool(2, padding=2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        nn.AveragePool(5)(np.zeros((1, 1, 3, 3), np.float32))
    with pytest.raises(ValueError, match="4-D"):
        nn.MaxPool(2)(np.zeros((3, 3), np.float32))


def onnx_pool_loop(x, k, s, pads, dil, ceil, mode):
    """ONNX MaxPool / AveragePool from the definition, one output at a time, float64:
    pads (top, bottom, left, right); mode "max", "avg" (count_include_pad) or
    "avg_exclude_pad"."""
    x = x.astype(np.float64)
    n, c, h, w = x.shape
    t, b, l, r = pads

    def size(n_in, k, s, d, before, after):
        span = n_in + before + after - d * (k - 1) - 1
        out = -(-span // s) + 1 if ceil else span // s + 1
        if ceil and (out - 1) * s >= n_in + before:  # the last window starts in the input
            out -= 1
        return out

    oh, ow = size(h, k[0], s[0], dil[0], t, b), size(w, k[1], s[1], dil[1], l, r)
    y = np.empty((n, c, oh, ow))
    for oy in range(oh):
        for ox in range(ow):
            rows = [oy * s[0] - t + i * dil[0] for i in range(k[0])]
            cols = [ox * s[1] - l + j * dil[1] for j in range(k[1])]
            inside = [(i, j) for i in rows for j in cols if 0 <= i < h and 0 <= j < w]
            vals = np.stack([x[:, :, i, j] for i, j in inside], axis=-1)
            if mode == "max":
                y[:, :, oy, ox] = vals.max(axis=-1)
                continue
            if mode == "avg":   # taps inside the padded input count, zeros included
                count = sum(-t <= i < h + b for i in rows) * sum(-l <= j < w + r for j in cols)
            else:
                count = len(inside)
            y[:, :, oy, ox] = vals.sum(axis=-1) / count
    return y


# Pads wider than half the kernel (torch refuses them, ONNX allows them), one-sided
# pads, ceil_mode windows that overhang, dilation.
WIDE_POOLS = [((3, 3), (2, 2), (2, 1, 0, 2), (1, 1), True),
              ((3, 2), (1, 2), (2, 2, 1, 1), (1, 1), False),
              ((2, 3), (3, 2), (1, 0, 2, 2), (1, 1), True),
              ((3, 3), (2, 1), (4, 3, 1, 4), (2, 3), True),
              ((5, 5), (3, 3), (4, 4, 4, 4), (1, 1), True)]


@pytest.mark.parametrize("backend", ["c", "numba", "numpy"])
@pytest.mark.parametrize("k,s,pads,dil,ceil", WIDE_POOLS)
def test_window_pools_match_the_definition(backend, k, s, pads, dil, ceil):
    rng = np.random.default_rng(3)
    x = rand(rng, 2, 3, 11, 10)
    (t, b, l, r) = pads
    layers = [("max", nn.MaxPool(k, s, ((t, b), (l, r)), dil, ceil))]
    if dil == (1, 1):
        layers += [("avg", nn.AveragePool(k, s, ((t, b), (l, r)), ceil, count_include_pad=True)),
                   ("avg_exclude_pad", nn.AveragePool(k, s, ((t, b), (l, r)), ceil))]
    for mode, layer in layers:
        with fastconv.config(backend=backend):
            y = layer(x)
        want = onnx_pool_loop(x, k, s, pads, dil, ceil, mode)
        assert y.shape == want.shape and layer.output_shape(x.shape[1:]) == want.shape[1:]
        np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6, err_msg=f"{mode} {layer}")


def test_global_max_pool_layer():
    x = rand(np.random.default_rng(4), 2, 3, 5, 7)
    np.testing.assert_array_equal(nn.GlobalMaxPool2d()(x), x.max(axis=(2, 3), keepdims=True))


# -- compress_fc ------------------------------------------------------------------------

def test_compress_fc_is_the_truncated_svd():
    rng = np.random.default_rng(7)
    w1, b1, w2 = rand(rng, 40, 30), rand(rng, 40), rand(rng, 6, 40)
    model = nn.Sequential(nn.Linear(w1, b1), nn.ReLU(), nn.Linear(w2))
    x = rand(rng, 5, 30)
    small, report = nn.compress_fc(model, {0: 8}, sample=x)
    u, s, vt = np.linalg.svd(w1.astype(np.float64), full_matrices=False)
    w8 = (u[:, :8] * s[:8]) @ vt[:8]
    want = np.maximum(x @ w8.T + b1, 0) @ w2.T.astype(np.float64)
    np.testing.assert_allclose(small(x), want, rtol=1e-4, atol=1e-4)
    (row,) = report.rows
    assert row.params_before == 40 * 30 + 40 and row.params_after == 8 * 30 + 8 * 40 + 40
    assert report.params_before == model.params()
    assert report.params_after == model.params() - row.params_before + row.params_after
    np.testing.assert_allclose(row.weight_error, np.linalg.norm(w1 - w8) / np.linalg.norm(w1),
                               rtol=1e-5)
    full = model(x).astype(np.float64)
    np.testing.assert_allclose(report.output_error,
                               np.abs(full - small(x)).max() / np.abs(full).max(), rtol=1e-3)
    # Full rank reproduces the layer.
    exact, rep = nn.compress_fc(model, 30, layers=[0], sample=x)
    assert rep.output_error < 1e-5
    assert "model:" in str(rep)


def test_compress_fc_on_a_graph_and_bad_arguments():
    rng = np.random.default_rng(8)
    w, b = rand(rng, 20, 12), rand(rng, 20)
    g = nn.Graph([("fc", nn.Linear(w, b), "x", "h"), ("act", nn.ReLU(), "h", "y")], "x", "y")
    small, report = nn.compress_fc(g, 4)
    assert [n.name for n in small.nodes] == ["fc/rank4", "fc"] and small.nodes[1].relu
    u, s, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
    x = rand(rng, 3, 12)
    np.testing.assert_allclose(small(x), np.maximum(x @ ((u[:, :4] * s[:4]) @ vt[:4]).T + b, 0),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="rank must be"):
        nn.compress_fc(g, 13)
    with pytest.raises(ValueError, match="not a Linear"):
        nn.compress_fc(g, 2, layers=["act"])
    with pytest.raises(TypeError, match="Sequential or nn.Graph"):
        nn.compress_fc(nn.ReLU(), 2)


class Failing(nn.Module):
    """A layer whose call raises while `fail` is set."""
    fail = False

    def forward(self, x):
        if self.fail:
            raise ValueError("this layer fails")
        return x * 2

    def output_shape(self, shape):
        return shape


@pytest.mark.parametrize("backend", ["c", "numba", "numpy"])
def test_conv_buffers_kept_for_later_calls(backend):
    """Later calls write conv outputs into buffers of earlier calls, yet no
    result handed out changes afterwards: outputs (and views of them, and conv
    outputs that are both an output and read on) are the caller's; a failed
    call returns what it borrowed; another input shape starts afresh."""
    rng = np.random.default_rng(5)
    w1, b1, w2, w3 = rand(rng, 6, 3, 3, 3), rand(rng, 6), rand(rng, 6, 6, 1, 1), rand(rng, 4, 6, 3, 3)
    bad = Failing()
    g = nn.Graph([(nn.Conv2d(w1, b1, padding=1), "x", "a"), (nn.ReLU(), "a", "r"),
                  (nn.Conv2d(w2), "r", "b"), (nn.Conv2d(w3, padding=1), "b", "c"),
                  (bad, "c", "d"), (nn.Flatten(), "b", "flat")], "x", ["d", "b", "flat"])

    def ref(x):
        r = np.maximum(conv_ref(x, w1, b1, 1), 0)
        b = conv_ref(r, w2)
        return 2 * conv_ref(b, w3, None, 1), b, b.reshape(len(b), -1)

    with fastconv.config(backend=backend):
        seen = []
        for shape in [(2, 3, 9, 8)] * 3 + [(1, 3, 5, 7)] * 2 + [(2, 3, 9, 8)]:
            x = rand(rng, *shape)
            seen.append((g(x), ref(x)))
            if len(seen) == 2:          # a call that fails half way
                bad.fail = True
                with pytest.raises(ValueError, match="fails"):
                    g(rand(rng, *shape))
                bad.fail = False
        for got, want in seen:          # every result is still what it was
            for a, b in zip(got, want):
                assert a.shape == b.shape and np.abs(a - b).max() <= 1e-5 * np.abs(b).max()
        assert np.shares_memory(seen[-1][0][1], seen[-1][0][2])  # Flatten's view of "b"
        ids = {id(a) for got, _ in seen for a in got}
        assert len(ids) == 3 * len(seen)   # no two results share an array


def test_conv_buffers_reused_across_calls():
    """A chain of convs: the second call's intermediate activations are the
    first call's buffers (no fresh arrays beyond the output)."""
    rng = np.random.default_rng(6)
    ws = [rand(rng, 4, 4, 3, 3) for _ in range(4)]
    g = nn.Graph([(nn.Conv2d(w, padding=1), f"v{i}", f"v{i + 1}") for i, w in enumerate(ws)],
                 "v0", "v4")
    x = rand(rng, 1, 4, 6, 6)
    made = []
    real = np.empty

    def counting(*a, **k):
        arr = real(*a, **k)
        made.append(arr.shape)
        return arr
    g(x)
    np.empty = counting
    try:
        y = g(x)
    finally:
        np.empty = real
    assert made.count((1, 4, 6, 6)) <= 1, made   # the output alone is new
    want = x.astype(np.float64)
    for w in ws:
        want = conv_ref(want, w, None, 1)
    assert np.abs(y - want).max() <= 1e-5 * np.abs(want).max()
