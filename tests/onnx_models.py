"""Models for the ONNX tests: the onnx wheel's light model zoo with random
weights, torchvision architectures exported by torch, and ONNX Runtime as the
reference that runs them."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest

LIGHT = ("bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50",
         "shufflenet", "squeezenet", "vgg19", "zfnet512")


def light_path(name):
    onnx = pytest.importorskip("onnx")
    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light",
                        f"light_{name}.onnx")


def _pseudo_random(shape, rng, period=1_000_003):
    """Normal values of `shape`.  Large tensors repeat a prime-length random
    block, which no row length divides, so drawing them costs a copy, not a
    generator run."""
    size = int(np.prod(shape))
    if size <= period:
        return rng.standard_normal(shape, dtype=np.float32)
    return np.resize(rng.standard_normal(period, dtype=np.float32), shape)


def randomized(model, seed=0):
    """A copy of a light model with random weights, ending in logits.

    The zoo's light models make every weight with ConstantOfShape(0.02), which
    makes all channels alike (a channel-order bug would not show); here each
    becomes a seeded random initializer (He-scaled; 1-D ones, biases and batch
    norm statistics, in [0.5, 1.5]).  A final Softmax is dropped: random
    logits saturate it to one-hot, which would hide errors in the logits."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g, rng = m.graph, np.random.default_rng(seed)
    inits = {t.name: t for t in g.initializer}
    keep = []
    for n in g.node:
        if n.op_type == "ConstantOfShape" and n.input[0] in inits:
            shape = tuple(int(d) for d in numpy_helper.to_array(inits[n.input[0]]))
            if len(shape) >= 2:
                v = _pseudo_random(shape, rng) * np.float32(np.sqrt(2 / np.prod(shape[1:])))
            else:
                v = rng.uniform(0.5, 1.5, shape).astype(np.float32)
            g.initializer.append(numpy_helper.from_array(v, n.output[0]))
            if m.ir_version < 4:  # initializers are graph inputs too before IR 4
                g.input.append(onnx.helper.make_tensor_value_info(
                    n.output[0], onnx.TensorProto.FLOAT, shape))
        else:
            keep.append(n)
    if keep[-1].op_type == "Softmax" and keep[-1].output[0] == g.output[0].name:
        g.output[0].name = keep.pop().input[0]
    del g.node[:]
    g.node.extend(keep)
    return m


def ort_run(model, *xs):
    """ONNX Runtime's outputs (all of them, a list) for `xs`."""
    ort = pytest.importorskip("onnxruntime")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 2
    data = model if isinstance(model, bytes) else model.SerializeToString()
    s = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    return s.run(None, {i.name: x for i, x in zip(s.get_inputs(), xs)})


def assert_close_to_magnitude(y, ref, rtol=1e-4):
    """|y - ref| <= rtol * max|ref| everywhere (the tolerance of the issue)."""
    y, ref = np.asarray(y), np.asarray(ref)
    assert y.shape == ref.shape, (y.shape, ref.shape)
    scale = float(np.abs(ref).max())
    err = float(np.abs(y.astype(np.float64) - ref).max())
    assert err <= rtol * scale, f"max error {err:.3g} > {rtol} x max|ref| {scale:.3g}"


def torchvision_models():
    """torchvision.models, imported although its compiled ops do not load.

    On a CPU-only torch, `import torchvision` fails while registering fake
    (meta) kernels for its compiled ops (nms, roi_align, ...).  The model
    definitions need none of them, so registration failures are skipped while
    torchvision imports; torch.library is restored afterwards."""
    torch = pytest.importorskip("torch")
    import sys
    if "torchvision.models" in sys.modules:
        return sys.modules["torchvision.models"]
    real = torch.library.register_fake

    def tolerant(op, func=None, /, **kwargs):
        def register(f):
            try:
                return real(op, f, **kwargs)
            except RuntimeError:  # "operator torchvision::nms does not exist"
                return f
        return register if func is None else register(func)

    torch.library.register_fake = tolerant
    try:
        import torchvision.models as models
    except Exception as e:  # pragma: no cover - depends on the installed build
        pytest.skip(f"torchvision.models cannot be imported: {e}")
    finally:
        torch.library.register_fake = real
    return models


def export_torchvision(name, size=224, seed=0):
    """(onnx bytes, torch model) for a randomly initialised torchvision model
    in eval mode, exported at opset 17 with the TorchScript exporter and a
    free batch axis."""
    torch = pytest.importorskip("torch")
    models = torchvision_models()
    torch.manual_seed(seed)
    kwargs = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    model = getattr(models, name)(weights=None, **kwargs).eval()
    if name in ("resnet50", "mobilenet_v2", "googlenet"):
        # Random batch norm statistics, so folding them into convs is tested.
        g = torch.Generator().manual_seed(seed + 1)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    x = torch.zeros(1, 3, size, size)
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(model, (x,), buf, opset_version=17, dynamo=False,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    return buf.getvalue(), model
