"""FC as conv vs linear: VGG-16's fc6 is a 7x7x512 -> 4096 conv over a 7x7 map, and
the same weights as an FC layer.  fastconv runs both as one GEMV; torch's conv
path does not see that."""
import numpy as np
import pytest

import fastconv
from fastconv.bench import peers
from fastconv.bench.suites import VGG16

from bench_helpers import arrays, check

FC6 = next(layer for layer in VGG16 if layer.name == "fc6")
IMPLS = ["c-conv", "c-linear", "numba-conv", "numba-linear", "torch-conv", "torch-linear",
         "onnxruntime-conv"]


@pytest.mark.parametrize("impl", IMPLS)
def test_fc6_as_conv_vs_linear(impl, reduced, batch, threads, measure, request):
    entry = FC6.reduced() if reduced else FC6
    x, w, bias = arrays(entry, batch)
    x2, w2 = x.reshape(batch, -1), w.reshape(entry.k, -1)   # the FC view of the same data
    backend, form = impl.split("-")
    if backend == "torch":
        torch = request.getfixturevalue("torch")
        if form == "conv":
            fn = peers.conv("torch", entry, x, w, bias, threads)
        else:
            xt, wt, bt = (torch.from_numpy(a) for a in (x2, w2, bias))
            fn = lambda: torch.nn.functional.linear(xt, wt, bt).numpy()
    elif backend == "onnxruntime":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnx")
        fn = peers.conv("onnxruntime", entry, x, w, bias, threads)
    elif form == "conv":
        fn = lambda: fastconv.conv2d(x, w, bias, backend=backend)
    else:
        fn = lambda: fastconv.linear(x2, w2, bias, backend=backend)
    result = np.asarray(measure(entry, fn, batch))
    check(result.reshape(batch, entry.k, 1, 1), entry, batch)
