"""Pooling: the C and Numba kernels, the fastconv.nn layers (MaxPool2d /
AvgPool2d on the configured backend, "nn-layer": the kernel plus the layer's
checks), torch.nn.functional and ONNX Runtime (a one-node model), on the pools
of VGG-16, ResNet-50, GoogLeNet, SqueezeNet, AlexNet and MTCNN's P-Net (its
first pyramid level on a 1280x720 image)."""
import numpy as np
import pytest

import fastconv
from fastconv import nn

# (name, C, H, W, kernel, stride, padding, ceil_mode, kind)
POOLS = [
    ("vgg16.pool1", 64, 224, 224, 2, 2, 0, False, "max"),
    ("vgg16.pool5", 512, 14, 14, 2, 2, 0, False, "max"),
    ("resnet50.maxpool", 64, 112, 112, 3, 2, 1, False, "max"),
    ("googlenet.pool3", 480, 28, 28, 3, 2, 0, True, "max"),
    ("googlenet.avg5", 832, 7, 7, 3, 1, 1, False, "avg"),
    ("resnet50.gap", 2048, 7, 7, 7, 1, 0, False, "avg"),
    ("googlenet.inception4", 480, 14, 14, 3, 1, 1, True, "max"),
    ("squeezenet1_1.pool1", 64, 111, 111, 3, 2, 0, True, "max"),
    ("alexnet.pool1", 64, 55, 55, 3, 2, 0, False, "max"),
    ("pnet.pool1", 10, 430, 766, 2, 2, 0, True, "max"),
]
IMPLS = ["c", "numba", "nn-layer", "torch", "onnxruntime"]


def _ort_pool(x, k, s, pad, ceil, kind, threads):
    """A one-node MaxPool / AveragePool model on ONNX Runtime (torch's semantics:
    count_include_pad for the average)."""
    ort = pytest.importorskip("onnxruntime")
    helper = pytest.importorskip("onnx.helper")
    from onnx import TensorProto
    attrs = {"kernel_shape": [k, k], "strides": [s, s], "pads": [pad] * 4,
             "ceil_mode": int(ceil)}
    if kind == "avg":
        attrs["count_include_pad"] = 1
    node = helper.make_node("MaxPool" if kind == "max" else "AveragePool", ["x"], ["y"],
                            **attrs)
    graph = helper.make_graph([node], "pool",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return lambda: sess.run(None, {"x": x})[0]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("pool", POOLS, ids=lambda p: p[0])
def test_pool(pool, impl, batch, reduced, measure, request, threads):
    name, c, h, w, k, s, pad, ceil, kind = pool
    if reduced:  # the correctness pass: a few channels
        c = min(c, 4)
    x = np.random.default_rng(0).standard_normal((batch, c, h, w)).astype(np.float32)
    if impl in ("c", "numba"):
        if kind == "max":
            fn = lambda: fastconv.max_pool2d(x, k, s, pad, 1, ceil, backend=impl)
        else:
            fn = lambda: fastconv.avg_pool2d(x, k, s, pad, ceil, backend=impl)
    elif impl == "nn-layer":
        if ceil and kind == "avg":
            pytest.skip("nn.AvgPool2d has no ceil_mode")
        layer = nn.MaxPool2d(k, s, pad, ceil) if kind == "max" else nn.AvgPool2d(k, s, pad)
        fn = lambda: layer(x)
    elif impl == "onnxruntime":
        fn = _ort_pool(x, k, s, pad, ceil, kind, threads)
    else:
        torch = request.getfixturevalue("torch")
        t = torch.from_numpy(x)
        F = torch.nn.functional
        fn = (lambda: F.max_pool2d(t, k, s, pad, ceil_mode=ceil)) if kind == "max" else \
            (lambda: F.avg_pool2d(t, k, s, pad, ceil_mode=ceil))
    y = measure(None, fn, group=f"{name} batch {batch}", flops=x.size * k * k,
                nbytes=x.nbytes)
    y = y.numpy() if hasattr(y, "numpy") else y
    want = (fastconv.max_pool2d if kind == "max" else fastconv.avg_pool2d)(
        x[:1], k, s, pad, *((1, ceil) if kind == "max" else (ceil,)), backend="c")
    np.testing.assert_allclose(y[:1], want, rtol=1e-5, atol=1e-6)
