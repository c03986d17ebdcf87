"""fastconv.onnx.load against ONNX Runtime: whole networks, single ops, bad models.

The light model zoo in the onnx wheel (nine ImageNet networks) runs in CI with
only onnx and onnxruntime installed; the torchvision exports need torch and
skip without it.  Heavy cases (VGG/AlexNet at a larger batch, every network on
numba) run with FASTCONV_HEAVY_TESTS=1.
"""
import os

import numpy as np
import pytest

import fastconv
from fastconv import nn

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import onnx_models as om  # noqa: E402
from checks import slow_except  # noqa: E402
from fastconv import onnx as fonnx  # noqa: E402

HEAVY = os.environ.get("FASTCONV_HEAVY_TESTS") == "1"
heavy = pytest.mark.skipif(not HEAVY, reason="set FASTCONV_HEAVY_TESTS=1")


def image(n, size=224, seed=0, c=3):
    return np.random.default_rng(seed).standard_normal((n, c, size, size), dtype=np.float32)


_light_cache = {}


@pytest.fixture(scope="module", autouse=True)
def _free_models():
    yield
    _light_cache.clear()
    _tv_cache.clear()


def light(name):
    """(randomized model proto, loaded Graph), kept for the module's tests."""
    if name not in _light_cache:
        m = om.randomized(onnx.load(om.light_path(name)))
        _light_cache[name] = (m, fonnx.load(m))
    return _light_cache[name]


# -- the onnx wheel's light model zoo -----------------------------------------------

# The quick tier runs the three smallest; the full suite all nine.
@pytest.mark.parametrize("name", [n if n in ("inception_v1", "shufflenet", "squeezenet") else
                                  pytest.param(n, marks=pytest.mark.slow) for n in om.LIGHT])
def test_light_model_matches_onnxruntime(name):
    model, g = light(name)
    x = image(1)
    with fastconv.config(backend="c"):
        y = g(x)
    om.assert_close_to_magnitude(y, om.ort_run(model, x)[0])


BATCHED = ("squeezenet", "densenet121", "shufflenet")


@pytest.mark.parametrize("name", slow_except(BATCHED, (0, 2)) + list(
    tuple(n for n in om.LIGHT if n not in BATCHED) if HEAVY else ()))
def test_light_model_larger_batch(name):
    model, g = light(name)
    x = image(3 if HEAVY else 2, seed=1)
    with fastconv.config(backend="c"):
        y = g(x)
    om.assert_close_to_magnitude(y, om.ort_run(model, x)[0])


@pytest.mark.parametrize("name", ["squeezenet", "inception_v1"] + (
    [n for n in om.LIGHT if n not in ("squeezenet", "inception_v1")] if HEAVY else []))
def test_light_model_numba(name):
    model, g = light(name)
    x = image(1, seed=2)
    with fastconv.config(backend="numba"):
        y = g(x)
    om.assert_close_to_magnitude(y, om.ort_run(model, x)[0])


@pytest.mark.parametrize("name,size", [("squeezenet", 64), ("densenet121", 32)])
def test_light_model_numpy_oracle_small_input(name, size):
    # Global average pooling lets these two take other sizes.
    model, g = light(name)
    x = image(2, size=size, seed=3)
    with fastconv.config(backend="numpy"):
        y = g(x)
    om.assert_close_to_magnitude(y, om.ort_run(model, x)[0])


def test_light_resnet50_folds_batchnorm_and_relu():
    _, g = light("resnet50")
    kinds = [type(n.layer).__name__ for n in g.nodes]
    assert "BatchNorm2d" not in kinds
    # 49 ReLUs, all in a conv's store: 33 follow a conv, 16 follow a residual
    # Sum, which its last conv adds in the same store.
    assert sum(n.relu for n in g.nodes if isinstance(n.layer, nn.Conv2d)) == 49
    assert sum(n.residual and n.relu for n in g.nodes) == 16
    assert not any(isinstance(n.layer, nn.Add) for n in g.nodes)
    assert kinds.count("ReLU") == 0


@pytest.mark.slow
def test_summary_fc_share_of_light_models():
    _, g = light("vgg19")
    s = nn.summary(g, (3, 224, 224))
    assert s.params == g.params()
    fc = sum(n.layer.params() for n in g.nodes if isinstance(n.layer, nn.Linear))
    assert s.fc_params == fc and 0.85 < s.fc_share < 0.9   # VGG-19: 124M of 144M
    _, g = light("squeezenet")
    assert nn.summary(g, (3, 224, 224)).fc_share == 0.0


# -- torchvision architectures exported by torch ----------------------------------------

_tv_cache = {}


def torchvision(name, size):
    key = (name, size)
    if key not in _tv_cache:
        data, _ = om.export_torchvision(name, size)
        _tv_cache[key] = (data, fonnx.load(data))
    return _tv_cache[key]


# (name, spatial size, batch): AlexNet/VGG need 224 for their FC head.
TORCHVISION = [("squeezenet1_1", 96, 2), ("mobilenet_v2", 96, 2), ("resnet50", 64, 2),
               ("googlenet", 96, 2), ("alexnet", 224, 1), ("vgg16", 224, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("name,size,batch", TORCHVISION)
def test_torchvision_model_matches_onnxruntime(name, size, batch):
    data, g = torchvision(name, size)
    x = image(batch, size, seed=4)
    with fastconv.config(backend="c"):
        y = g(x)
    om.assert_close_to_magnitude(y, om.ort_run(data, x)[0])


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 3])
def test_mobilenet_v2_at_224_on_every_isa(batch):
    """MobileNet-V2 at its own size (depthwise planes of 112 down to 7 pixels,
    stride 1 and 2) on every ISA's kernels, twice each: the second call runs
    on the conv buffers the first one left."""
    from isas import c_isas, using_isa
    data, g = torchvision("mobilenet_v2", 224)
    x = image(batch, seed=8)
    want = om.ort_run(data, x)[0]
    for isa in c_isas():
        with using_isa(isa), fastconv.config(backend="c"):
            first = g(x)
            om.assert_close_to_magnitude(g(x), want)
            om.assert_close_to_magnitude(first, want)


@heavy
@pytest.mark.parametrize("backend", ["c", "numba"])
@pytest.mark.parametrize("name", [t[0] for t in TORCHVISION])
def test_torchvision_model_batch8_at_224(name, backend):
    data, g = torchvision(name, 224)
    x = image(8, seed=5)
    with fastconv.config(backend=backend):
        y = g(x)
    om.assert_close_to_magnitude(y, om.ort_run(data, x)[0])


@pytest.mark.slow
def test_torchvision_alexnet_fully_convolutional():
    data, g = torchvision("alexnet", 224)
    fcn = nn.to_fully_convolutional(g, (3, 224, 224))
    x = image(1, seed=6)
    om.assert_close_to_magnitude(fcn(x)[:, :, 0, 0], om.ort_run(data, x)[0])
    # A larger image gives a map of class scores: the FC head is now convolutions.
    assert fcn(image(1, 256, seed=7)).shape == (1, 1000, 2, 2)


@pytest.mark.slow
def test_torchvision_summary_fc_share():
    # The design notes' numbers: VGG-16 ~89%, ResNet-50 ~8%, SqueezeNet 0%.
    for name, size, low, high in (("alexnet", 224, 0.955, 0.965), ("vgg16", 224, 0.88, 0.90),
                                  ("resnet50", 64, 0.07, 0.09),
                                  ("squeezenet1_1", 96, 0.0, 0.0)):
        _, g = torchvision(name, size)
        s = nn.summary(g, (3, size, size))
        assert low <= s.fc_share <= high, (name, s.fc_share)
        assert s.params == g.params()


@pytest.mark.slow
def test_bench_networks_runs_on_a_tiny_configuration(tmp_path):
    # The command's plumbing (export, one worker process per implementation,
    # alternating rounds, the JSON and Markdown reports), not its timings.
    import json
    import subprocess
    import sys
    pytest.importorskip("torch")
    cmd = [sys.executable, "-m", "fastconv", "bench", "--suite", "networks", "--networks",
           "squeezenet1_1", "--size", "48", "--batch", "2", "--rounds", "2", "--threads", "1",
           "--compare", "onnxruntime", "--algorithms", "auto,winograd",
           "--json", str(tmp_path / "r.json"),
           "--markdown", str(tmp_path / "r.md")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr[-2000:]
    row = next(line.split() for line in out.stdout.splitlines() if line.startswith("squeeze"))
    assert row[1] == "2" and float(row[2]) > 0 and float(row[3]) > 0
    assert float(row[-1]) < 1e-4          # fastconv's max error vs ONNX Runtime
    assert any(line.startswith("batch 2: geometric mean of ort/fastconv-winograd")
               for line in out.stdout.splitlines())
    report = json.loads((tmp_path / "r.json").read_text())
    assert "--suite networks" in report["command"]
    (saved,) = report["rows"]
    assert saved["network"] == "squeezenet1_1" and saved["batch"] == 2
    assert saved["ms"]["fastconv"] == pytest.approx(float(row[2]), abs=0.01)
    assert saved["ms"]["fastconv-winograd"] > 0 and saved["ort_over_winograd"] > 0
    assert saved["winograd_error"] < 1e-4       # Winograd's error bound, vs ONNX Runtime
    md = (tmp_path / "r.md").read_text()
    assert "| squeezenet1_1 | 2 |" in md and "ort / winograd" in md


# -- single ops against ONNX Runtime ------------------------------------------------------

def single_op(op, x_shape, attrs=None, consts=(), opset=17, out_dims=None, extra_inputs=()):
    """A one-node model: input x (and extra runtime inputs), constants as initializers."""
    inits = [numpy_helper.from_array(np.asarray(v), f"c{i}") for i, v in enumerate(consts)]
    names = ["x"] + [f"e{i}" for i in range(len(extra_inputs))] + [t.name for t in inits]
    node = helper.make_node(op, names, ["y"], **(attrs or {}))
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)] + [
        helper.make_tensor_value_info(f"e{i}", TensorProto.FLOAT, s)
        for i, s in enumerate(extra_inputs)]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, out_dims)
    graph = helper.make_graph([node], "g", ins, [out], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


OPS = [
    ("MaxPool", (2, 3, 11, 13), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 1, 1, 0],
                                     ceil_mode=1), ()),
    ("MaxPool", (1, 2, 12, 12), dict(kernel_shape=[3, 2], dilations=[2, 3], strides=[1, 2]), ()),
    ("AveragePool", (2, 3, 11, 13), dict(kernel_shape=[3, 3], strides=[2, 2],
                                         pads=[1, 1, 1, 1], ceil_mode=1), ()),
    ("AveragePool", (2, 3, 11, 13), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 1],
                                         ceil_mode=1, count_include_pad=1), ()),
    ("AveragePool", (1, 2, 7, 7), dict(kernel_shape=[7, 7]), ()),
    # pads wider than half the kernel (ONNX Runtime allows up to the kernel less one)
    ("MaxPool", (2, 3, 11, 13), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[2, 0, 1, 2],
                                     ceil_mode=1), ()),
    ("MaxPool", (1, 2, 12, 12), dict(kernel_shape=[3, 3], dilations=[2, 2], pads=[2, 1, 2, 2]),
     ()),
    ("AveragePool", (2, 3, 11, 13), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[2, 2, 2, 2],
                                         ceil_mode=1, count_include_pad=1), ()),
    ("AveragePool", (2, 3, 11, 13), dict(kernel_shape=[3, 2], strides=[2, 1], pads=[2, 1, 0, 1],
                                         ceil_mode=1), ()),
    ("GlobalMaxPool", (2, 3, 5, 4), {}, ()),
    ("GlobalAveragePool", (2, 3, 5, 4), {}, ()),
    ("LRN", (2, 7, 4, 4), dict(size=5, alpha=1e-2, beta=0.75, bias=2.0), ()),
    ("LRN", (1, 6, 3, 3), dict(size=3), ()),
    ("LeakyRelu", (2, 5), dict(alpha=0.1), ()),
    ("Sigmoid", (2, 5), {}, ()),
    ("HardSigmoid", (2, 5), dict(alpha=0.3, beta=0.4), ()),
    ("HardSwish", (2, 5), {}, ()),
    ("Clip", (2, 5), {}, (np.float32(-0.5), np.float32(0.7))),
    ("Softmax", (2, 3, 4), dict(axis=1), ()),
    ("Softmax", (2, 3, 4), {}, ()),
    ("PRelu", (2, 3, 4, 4), {}, (np.array([[[0.1]], [[0.2]], [[-0.3]]], np.float32),)),
    ("BatchNormalization", (2, 3, 4, 4), dict(epsilon=1e-3),
     (np.array([1, 2, 3], np.float32), np.array([0.1, 0.2, 0.3], np.float32),
      np.array([0, 1, -1], np.float32), np.array([1, 0.5, 2], np.float32))),
    ("Add", (2, 3, 4, 4), {}, (np.arange(4, dtype=np.float32),)),
    ("Sub", (2, 3, 4, 4), {}, (np.arange(3, dtype=np.float32).reshape(3, 1, 1),)),
    ("Mul", (2, 3, 4, 4), {}, (np.float32(2.5),)),
    ("Div", (2, 3, 4, 4), {}, (np.arange(1, 5, dtype=np.float32),)),
    ("Transpose", (2, 3, 4), dict(perm=[0, 2, 1]), ()),
    ("Reshape", (2, 3, 4), {}, (np.array([0, -1], np.int64),)),
    ("Flatten", (2, 3, 4), {}, ()),
    ("Unsqueeze", (2, 3), {}, (np.array([1, -1], np.int64),)),
    ("Squeeze", (2, 1, 3, 1), {}, (np.array([1], np.int64),)),
    ("Pad", (1, 2, 3, 3), {}, (np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64),
                               np.float32(0.5))),
    ("Pad", (1, 2, 3, 3), dict(mode="reflect"), (np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64),)),
    ("Slice", (2, 5, 6), {}, (np.array([1, -4], np.int64), np.array([9, -1], np.int64),
                              np.array([1, 2], np.int64), np.array([2, 1], np.int64))),
    ("Conv", (2, 4, 9, 10), dict(auto_pad="SAME_UPPER", strides=[2, 3], group=2),
     (np.random.default_rng(0).standard_normal((6, 2, 3, 2), dtype=np.float32),)),
    ("Conv", (2, 4, 9, 10), dict(auto_pad="SAME_LOWER", strides=[3, 2]),
     (np.random.default_rng(1).standard_normal((3, 4, 2, 3), dtype=np.float32),
      np.arange(3, dtype=np.float32))),
    ("Conv", (1, 3, 8, 8), dict(pads=[0, 1, 2, 1], strides=[2, 1]),
     (np.random.default_rng(2).standard_normal((2, 3, 3, 3), dtype=np.float32),)),
    ("Gemm", (4, 6), dict(alpha=0.5, beta=2.0),
     (np.random.default_rng(3).standard_normal((6, 3), dtype=np.float32),
      np.arange(3, dtype=np.float32))),
    ("Gemm", (6, 4), dict(transA=1, transB=1),
     (np.random.default_rng(4).standard_normal((3, 6), dtype=np.float32),)),
    ("Gemm", (4, 6), dict(beta=0.5),
     (np.random.default_rng(6).standard_normal((6, 3), dtype=np.float32),
      np.arange(12, dtype=np.float32).reshape(4, 3))),
    ("MatMul", (2, 4, 6), {}, (np.random.default_rng(5).standard_normal((6, 3),
                                                                       dtype=np.float32),)),
]


@pytest.mark.parametrize("op,shape,attrs,consts", OPS,
                         ids=[f"{o[0]}-{i}" for i, o in enumerate(OPS)])
def test_single_op_matches_onnxruntime(op, shape, attrs, consts):
    model = single_op(op, shape, attrs, consts)
    x = np.random.default_rng(7).standard_normal(shape, dtype=np.float32)
    g = fonnx.load(model)
    om.assert_close_to_magnitude(g(x), om.ort_run(model, x)[0], rtol=1e-5)


def test_two_runtime_inputs_and_outputs():
    # Sum of two inputs, and a second output reading the first input again.
    nodes = [helper.make_node("Sum", ["a", "b"], ["s"]), helper.make_node("Relu", ["a"], ["r"])]
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3]) for n in "ab"]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("s", "r")]
    model = helper.make_model(helper.make_graph(nodes, "g", vi, outs),
                              opset_imports=[helper.make_opsetid("", 17)])
    a, b = image(1, 3)[0, 0], image(1, 3, seed=1)[0, 0]
    g = fonnx.load(model)
    s, r = g(a, b)
    rs, rr = om.ort_run(model, a, b)
    np.testing.assert_allclose(s, rs, rtol=1e-6)
    np.testing.assert_allclose(r, rr)


def test_shape_chain_flatten_keeps_batch_free():
    # What exporters emit for x.view(x.size(0), -1): Shape -> Gather -> Unsqueeze -> Concat.
    i64 = lambda *v: numpy_helper.from_array(np.array(v, np.int64))  # noqa: E731
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Constant", [], ["zero"],
                              value=numpy_helper.from_array(np.array(0, np.int64))),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "ax"], ["n1"]),
             helper.make_node("Constant", [], ["m1"], value=i64(-1)),
             helper.make_node("Concat", ["n1", "m1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["f"]),
             helper.make_node("Gemm", ["f", "w"], ["y"], transB=1)]
    w = np.random.default_rng(0).standard_normal((5, 2 * 3 * 3), dtype=np.float32)
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([0], np.int64), "ax")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    g = fonnx.load(model)
    for n in (1, 4):
        x = image(n, 3, c=2)
        om.assert_close_to_magnitude(g(x), om.ort_run(model, x)[0], rtol=1e-5)
    assert g.output_shape((2, 3, 3)) == (5,)
    fcn = nn.to_fully_convolutional(g, (2, 3, 3))
    np.testing.assert_allclose(fcn(image(2, 3, c=2))[:, :, 0, 0], g(image(2, 3, c=2)),
                               rtol=1e-5, atol=1e-6)


def test_constant_folding_leaves_no_shape_ops():
    i64 = lambda *v: numpy_helper.from_array(np.array(v, np.int64))  # noqa: E731
    nodes = [helper.make_node("Constant", [], ["dims"], value=i64(2, 3)),
             helper.make_node("ConstantOfShape", ["dims"], ["ones"],
                              value=numpy_helper.from_array(np.array([1.5], np.float32))),
             helper.make_node("Shape", ["ones"], ["s"]),
             helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT),
             helper.make_node("Slice", ["sf", "st", "en"], ["last"]),
             helper.make_node("Mul", ["x", "ones"], ["xm"]),
             helper.make_node("Add", ["xm", "last"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array([1], np.int64), "st"),
         numpy_helper.from_array(np.array([2], np.int64), "en")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    g = fonnx.load(model)
    assert [type(n.layer).__name__ for n in g.nodes] == ["Mul", "Add"]
    x = image(3, 3, c=2)[..., 0]
    om.assert_close_to_magnitude(g(x), om.ort_run(model, x)[0], rtol=1e-6)


# -- to_fully_convolutional on a loaded classifier -------------------------------------

def unpadded_classifier():
    """conv 5x5 -> relu -> maxpool 2 -> conv 3x3 -> relu -> flatten -> gemm -> relu -> gemm
    -> softmax, on 3x16x16; nothing is padded, so the fully convolutional form on a
    larger image equals the classifier slid over it at stride 2 (its downsampling)."""
    rng = np.random.default_rng(0)
    w = lambda *s: numpy_helper.from_array(  # noqa: E731
        (rng.standard_normal(s) / np.sqrt(np.prod(s[1:]))).astype(np.float32), f"w{len(inits)}")
    inits = []
    for s in ((6, 3, 5, 5), (8, 6, 3, 3), (10, 8 * 4 * 4), (4, 10)):
        inits.append(w(*s))
    inits.append(numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "b2"))
    nodes = [helper.make_node("Conv", ["x", "w0"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("MaxPool", ["b"], ["c"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["c", "w1"], ["d"]), helper.make_node("Relu", ["d"], ["e"]),
             helper.make_node("Flatten", ["e"], ["f"]),
             helper.make_node("Gemm", ["f", "w2", "b2"], ["g"], transB=1),
             helper.make_node("Relu", ["g"], ["h"]),
             helper.make_node("Gemm", ["h", "w3"], ["i"], transB=1),
             helper.make_node("Softmax", ["i"], ["y"], axis=1)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_to_fully_convolutional_equals_sliding_window():
    model = unpadded_classifier()
    g = fonnx.load(model)
    fcn = nn.to_fully_convolutional(g, (3, 16, 16))
    big = image(1, 24, seed=8)
    out = fcn(big)
    assert out.shape == (1, 4, 5, 5)
    crops = np.stack([big[0, :, 2 * i:2 * i + 16, 2 * j:2 * j + 16]
                      for i in range(5) for j in range(5)])
    ref = om.ort_run(model, crops)[0].reshape(5, 5, 4).transpose(2, 0, 1)
    om.assert_close_to_magnitude(out[0], ref, rtol=1e-5)
    small = image(2, 16, seed=9)
    np.testing.assert_allclose(fcn(small)[:, :, 0, 0], g(small), rtol=1e-5, atol=1e-7)
    assert not any(isinstance(n.layer, nn.Linear) for n in fcn.nodes)


@pytest.mark.slow
def test_to_fully_convolutional_light_alexnet_at_its_size():
    model, g = light("bvlc_alexnet")
    fcn = nn.to_fully_convolutional(g, (3, 224, 224))
    x = image(1, seed=10)
    om.assert_close_to_magnitude(fcn(x)[:, :, 0, 0], om.ort_run(model, x)[0])
    assert fcn.output_shape((3, 256, 288)) == (1000, 2, 3)


# -- bad models and bad inputs ----------------------------------------------------------

def tiny():
    return single_op("Conv", ["N", 3, 8, 8], {}, (np.ones((4, 3, 3, 3), np.float32),))


def test_unknown_op_names_op_node_and_supported_ops():
    node = helper.make_node("Einsum", ["x", "x"], ["y"], name="mix", equation="ij,ij->ij")
    graph = helper.make_graph([node], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ValueError, match=r"'mix'.*'Einsum'.*supported ops: Add, AveragePool"):
        fonnx.load(model)


def test_truncated_bytes_are_a_value_error():
    # Every prefix of a small model: a ValueError each time, never a crash.
    data = unpadded_classifier().SerializeToString()
    for cut in range(len(data)):
        with pytest.raises(ValueError, match="ONNX"):
            fonnx.load(data[:cut])


def test_garbage_and_wrong_types():
    with pytest.raises(ValueError):
        fonnx.load(b"\xff" * 64)
    with pytest.raises(TypeError, match="path, bytes or an onnx.ModelProto"):
        fonnx.load(42)
    with pytest.raises(FileNotFoundError):
        fonnx.load("/nonexistent/model.onnx")


def test_path_bytes_and_proto_give_the_same_graph(tmp_path):
    model = tiny()
    p = tmp_path / "m.onnx"
    p.write_bytes(model.SerializeToString())
    x = image(2, 8)
    ys = [fonnx.load(m)(x) for m in (str(p), p, model.SerializeToString(), model)]
    for y in ys[1:]:
        np.testing.assert_array_equal(y, ys[0])


def test_wrong_initializer_shape():
    # The Conv weight is a 3-D initializer.
    model = single_op("Conv", ["N", 3, 8, 8], {}, (np.ones((4, 3, 3), np.float32),))
    with pytest.raises(ValueError, match="2-D convolution.*weight has shape"):
        fonnx.load(model)
    # Raw data shorter than the dims say.
    model = tiny()
    model.graph.initializer[0].dims[0] = 5
    with pytest.raises(ValueError, match="c0"):
        fonnx.load(model)
    # A BatchNormalization whose mean has the wrong length.
    model = single_op("BatchNormalization", ["N", 3, 4, 4], {},
                      (np.ones(3, np.float32), np.ones(3, np.float32), np.ones(2, np.float32),
                       np.ones(3, np.float32)))
    with pytest.raises(ValueError, match="mean must be shape"):
        fonnx.load(model)


def test_cyclic_graph_is_a_value_error():
    nodes = [helper.make_node("Relu", ["x2"], ["x1"], name="first"),
             helper.make_node("Add", ["x", "x1"], ["x2"], name="second"),
             helper.make_node("Relu", ["x2"], ["y"], name="third")]
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    # onnx's checker already refuses it (nodes must be sorted); either way a ValueError.
    with pytest.raises(ValueError, match="cycle|topologically"):
        fonnx.load(model)


def test_wrong_input_at_run_time():
    g = fonnx.load(tiny())
    with pytest.raises(ValueError, match="must be 4-D"):
        g(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="must have 3 channels"):
        g(np.zeros((1, 4, 8, 8), np.float32))
    with pytest.raises(TypeError, match="must be float32"):
        g(np.zeros((1, 3, 8, 8), np.float64))
    with pytest.raises(TypeError, match="float32 or float64"):
        g(np.zeros((1, 3, 8, 8), np.int32))
    with pytest.raises(TypeError, match="takes 1 input"):
        g(np.zeros((1, 3, 8, 8), np.float32), np.zeros(1))
    with pytest.raises(ValueError, match="larger than the padded input"):
        g(np.zeros((1, 3, 2, 2), np.float32))


def test_import_fastconv_does_not_import_onnx():
    import subprocess
    import sys
    code = "import sys, fastconv, fastconv.nn; print('onnx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_bench_networks_process_clock(tmp_path):
    """--clock process: each worker reports its CPU time; the rows say which clock."""
    import json
    import subprocess
    import sys
    pytest.importorskip("torch")
    cmd = [sys.executable, "-m", "fastconv", "bench", "--suite", "networks", "--networks",
           "mobilenet_v2", "--size", "32", "--batch", "1", "--rounds", "1", "--threads", "1",
           "--compare", "onnxruntime", "--clock", "process", "--json", str(tmp_path / "r.json")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr[-2000:]
    (row,) = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert row["clock"] == "process" and row["network"] == "mobilenet_v2"
    assert row["ms"]["fastconv"] > 0 and row["ms"]["onnxruntime"] > 0
    assert row["fastconv_error"] < 1e-4
