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


def randomized(model, seed=0):
    """A copy of a light model with random weights, ending in logits.

    The zoo's light models make every weight with ConstantOfShape(0.02), which
    makes all channels alike (a channel-order bug would not show); here each
    becomes a seeded random initializer (He-scaled; 1-D ones, biases and batch
    norm statistics, in [0.5, 1.5]).  A final Softmax is dropped: random
    logits saturate it to one-hot, which would hide errors in the logits.
    Reshapes to a batch of 1 copy the input's batch instead."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g, rng = m.graph, np.random.default_rng(seed)
    inits = {t.name: t for t in g.initializer}
    keep = []

    def add(name, v):
        g.initializer.append(numpy_helper.from_array(v, name))
        if m.ir_version < 4:  # initializers are graph inputs too before IR 4
            g.input.append(onnx.helper.make_tensor_value_info(
                name, onnx.TensorProto.FLOAT, v.shape))

    for n in g.node:
        if n.op_type != "ConstantOfShape" or n.input[0] not in inits:
            keep.append(n)
            continue
        shape = tuple(int(d) for d in numpy_helper.to_array(inits[n.input[0]]))
        scale = np.float32(np.sqrt(2 / np.prod(shape[1:]))) if len(shape) > 1 else None
        if scale is None:
            add(n.output[0], rng.uniform(0.5, 1.5, shape).astype(np.float32))
        elif len(shape) != 2 or np.prod(shape) <= 1 << 20:
            add(n.output[0], rng.standard_normal(shape, dtype=np.float32) * scale)
        else:
            # A large FC matrix as rows * columns + columns, built by the graph
            # itself: megabytes in the file instead of hundreds, and still every
            # input feature has its own weight.
            name = n.output[0]
            add(name + "/rows", rng.uniform(0.5, 1.5, (shape[0], 1)).astype(np.float32))
            add(name + "/cols", rng.standard_normal((1, shape[1]), dtype=np.float32) * scale)
            add(name + "/shift", rng.standard_normal((1, shape[1]), dtype=np.float32) * scale)
            keep.append(onnx.helper.make_node("Mul", [name + "/rows", name + "/cols"],
                                              [name + "/scaled"]))
            keep.append(onnx.helper.make_node("Add", [name + "/scaled", name + "/shift"], [name]))
    data = [v for v in g.input if v.name not in inits and not v.name.endswith(("/rows", "/cols",
                                                                            "/shift"))]
    # The zoo's Reshapes fix the batch to 1 ([1, features]); 0 copies the input's
    # batch instead (ONNX's rule), so every model takes any batch.
    for n in keep:
        if n.op_type == "Reshape" and n.input[1] in inits:
            target = numpy_helper.to_array(inits[n.input[1]])
            if target.ndim == 1 and len(target) > 1 and target[0] == 1:
                inits[n.input[1]].CopyFrom(numpy_helper.from_array(
                    np.concatenate([[0], target[1:]]).astype(target.dtype), n.input[1]))
    # Batch and spatial sizes free (where the model allows), also for ONNX Runtime.
    for v in data[:1] + list(g.output[:1]):
        dims = v.type.tensor_type.shape.dim
        for i, d in enumerate(dims):
            if i != 1:
                d.dim_param = "NCHW"[i] if i < 4 else f"d{i}"
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
    # The plain kernels: a reference, and no time spent folding huge constants.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
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


def export_torchvision(name, size=224, seed=0):
    """(onnx bytes, torch model): a randomly initialised torchvision model (random
    batch norm statistics too) exported at opset 17 with the TorchScript
    exporter, batch axis free (fastconv.bench.netbench builds and exports)."""
    pytest.importorskip("torch")
    from fastconv.bench import netbench
    try:
        model = netbench.build(name, seed)
    except ImportError as e:  # pragma: no cover - depends on the installed build
        pytest.skip(f"torchvision.models cannot be imported: {e}")
    buf = io.BytesIO()
    netbench.export(model, size, buf)
    return buf.getvalue(), model
