"""Convolution: every layer of every suite x fastconv backend x algorithm, with
torch.nn.functional.conv2d and ONNX Runtime as their own rows of the same group."""
import pytest

import fastconv
from fastconv.bench import peers
from fastconv.bench.suites import SUITES

from bench_helpers import arrays, check

# The quick tier's layers (the others are marked slow): 7x7 and 11x11 strided,
# 3x3 strided, 1x1 and strided 1x1, kernel = input (vgg16/fc6), few channels,
# depthwise.
QUICK = ("resnet50/conv1", "resnet50/l1.1x1c", "resnet50/l2.3x3s2", "resnet50/l2.ds",
         "vgg16/fc6", "alexnet/conv1", "lenet/conv2", "mobilenet/dw3x3")
LAYERS = [layer if layer.id in QUICK else pytest.param(layer, marks=pytest.mark.slow)
          for layer in SUITES["conv"]]
IMPLS = [f"{be}-{algo}" for be in ("c", "numba") for algo in ("auto", "direct", "im2col")] + \
    ["c-packed", "c-winograd", "torch", "onnxruntime"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("layer", LAYERS, ids=lambda l: l.id)
def test_conv(layer, impl, reduced, batch, threads, measure, request):
    entry = layer.reduced() if reduced else layer
    x, w, bias = arrays(entry, batch)
    if impl == "torch":
        request.getfixturevalue("torch")
        fn = peers.conv("torch", entry, x, w, bias, threads)
    elif impl == "onnxruntime":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnx")
        fn = peers.conv("onnxruntime", entry, x, w, bias, threads)
    elif impl == "c-packed":  # the weights packed once, as nn.Conv2d keeps them
        pw = fastconv.PackedWeight(w, bias)
        fn = lambda: fastconv.conv2d(x, pw, None, entry.stride, entry.pad, 1, entry.groups,
                                     backend="c")
    else:
        backend, algorithm = impl.split("-")
        if algorithm == "winograd" and (entry.kh, entry.kw, entry.stride, entry.groups) != \
                (3, 3, 1, 1):
            pytest.skip("Winograd runs 3x3 stride-1 ungrouped layers only")
        fn = lambda: fastconv.conv2d(x, w, bias, entry.stride, entry.pad, 1, entry.groups,
                                     algorithm=algorithm, backend=backend)
    check(measure(entry, fn, batch), entry, batch)
