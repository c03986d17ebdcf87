"""Load an ONNX model as a `fastconv.nn.Graph`.

    g = fastconv.onnx.load("resnet50.onnx")     # a path, bytes or onnx.ModelProto
    y = g(x)                                    # on fastconv.config's backend

Needs the `onnx` package (`pip install fastconv[onnx]`), imported only here.
At load: nodes whose inputs are all constants are evaluated once (the
Shape/Gather/Unsqueeze/Concat chains exporters emit, ConstantOfShape weights);
Dropout and Identity disappear; a BatchNormalization that alone reads a Conv's
output is folded into that conv's weight and bias; the Graph then runs a ReLU
or Clip(0, 6) after a Conv or Gemm in the kernel's store.  The batch axis is
free, and so are spatial sizes wherever the model's own shapes allow.
"""
from __future__ import annotations

import os

import numpy as np

from . import nn
from .graph import Graph, Node, topological_order

SUPPORTED_OPS = (
    "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant",
    "ConstantOfShape", "Conv", "Div", "Dropout", "Flatten", "Gather", "Gemm",
    "GlobalAveragePool", "GlobalMaxPool", "HardSigmoid", "HardSwish", "Identity", "LRN",
    "LeakyRelu", "MatMul", "MaxPool", "Mul", "PRelu", "Pad", "Relu", "Reshape", "Shape",
    "Sigmoid", "Slice", "Softmax", "Squeeze", "Sub", "Sum", "Transpose", "Unsqueeze")


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("fastconv.onnx needs the onnx package: pip install "
                          "'fastconv[onnx]'") from None
    return onnx


def _parse(model):
    onnx = _onnx()
    if isinstance(model, onnx.ModelProto):
        proto = model
    else:
        if isinstance(model, (str, os.PathLike)):
            with open(model, "rb") as f:
                data = f.read()
        elif isinstance(model, (bytes, bytearray, memoryview)):
            data = bytes(model)
        else:
            raise TypeError(f"model must be a path, bytes or an onnx.ModelProto; "
                            f"got {type(model).__name__}")
        proto = onnx.ModelProto()
        try:
            proto.ParseFromString(data)
        except Exception as e:  # protobuf's DecodeError and its relatives
            raise ValueError(f"model is not a valid ONNX file (truncated or corrupt): "
                             f"{e}") from None
    # No onnx.checker here: it serialises the whole model again and refuses
    # valid files (outputs without shapes).  What fastconv needs, load checks.
    if isinstance(model, (str, os.PathLike)):
        from onnx.external_data_helper import load_external_data_for_model
        try:  # tensors stored in files next to the model
            load_external_data_for_model(proto, os.path.dirname(os.fspath(model)))
        except OSError as e:
            raise ValueError(f"model's external data cannot be read: {e}") from None
    if not proto.HasField("graph") or not proto.graph.output:
        raise ValueError("model is not a valid ONNX model: it has no graph or no outputs "
                         "(a truncated file?)")
    return proto


class _Raw:
    """An ONNX node as topological_order sees it."""

    def __init__(self, proto, index):
        self.proto, self.op = proto, proto.op_type
        self.name = proto.name or f"{proto.op_type}_{index}"
        self.inputs = tuple(i for i in proto.input if i)
        self.outputs = tuple(o for o in proto.output if o)


def load(model) -> Graph:
    """The ONNX model (a path, bytes or onnx.ModelProto) as a fastconv Graph."""
    onnx = _onnx()
    from onnx import numpy_helper
    proto = _parse(model)
    g = proto.graph
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise ValueError("model is not a valid ONNX model: it imports no opset of the default "
                         "domain (a truncated file?)")

    consts = {}
    for t in g.initializer:
        try:
            consts[t.name] = numpy_helper.to_array(t)
        except Exception as e:
            raise ValueError(f"initializer {t.name!r} (dims {list(t.dims)}) cannot be read: "
                             f"{e}") from None
    inputs = [i for i in g.input if i.name not in consts]
    raw = [_Raw(n, i) for i, n in enumerate(g.node)]
    for r in raw:
        if r.proto.domain not in ("", "ai.onnx"):
            raise ValueError(f"node {r.name!r}: op {r.proto.domain}.{r.op} is from a domain "
                             f"fastconv does not support; supported ops: "
                             f"{', '.join(SUPPORTED_OPS)}")
        if r.op not in SUPPORTED_OPS:
            raise ValueError(f"node {r.name!r}: unsupported op type {r.op!r}; supported "
                             f"ops: {', '.join(SUPPORTED_OPS)}")
    order = topological_order(raw, set(consts) | {i.name for i in inputs})

    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    b = _Builder(consts, opset, onnx, used)
    for r in order:
        try:
            b.add(r)
        except (ValueError, TypeError) as e:
            kind = TypeError if isinstance(e, TypeError) else ValueError
            raise kind(f"node {r.name!r} ({r.op}): {e}") from None
        except KeyError as e:
            raise ValueError(f"node {r.name!r} ({r.op}): missing attribute {e}") from None
    outputs = [b.resolve(o.name) for o in g.output]
    shapes, dtypes = [], []
    for i in inputs:
        t = i.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                for d in t.shape.dim] if t.HasField("shape") else None
        if dims:
            dims[0] = None  # the batch is free
        shapes.append(None if dims is None else tuple(dims))
        dtypes.append(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type) if t.elem_type else None)
    nodes = b.nodes
    # A graph output that is an input or a no-op's alias still needs a node to name it.
    final = []
    for o, src in zip((o.name for o in g.output), outputs):
        if src != o:
            nodes.append(Node(nn.Identity(), (src,), (o,), f"output:{o}"))
        final.append(o)
    used = {i for n in nodes for i in n.inputs} | set(final)
    constants = {k: v for k, v in b.consts.items() if k in used}
    graph = Graph(nodes, [i.name for i in inputs], final, constants, shapes, dtypes)
    return _fold_batchnorm(graph)


class _Builder:
    def __init__(self, consts, opset, onnx, used):
        self.consts, self.opset, self.onnx, self.used = dict(consts), opset, onnx, used
        self.alias, self.nodes = {}, []

    def resolve(self, name):
        while name in self.alias:
            name = self.alias[name]
        return name

    def const(self, name, what):
        name = self.resolve(name)
        if name not in self.consts:
            raise ValueError(f"{what} ({name!r}) must be a constant (an initializer or "
                             f"computed from constants)")
        return self.consts[name]

    def attrs(self, r):
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in r.proto.attribute}

    def add(self, r):
        a = self.attrs(r)
        ins = [self.resolve(i) for i in r.proto.input]   # "" marks an absent optional input
        op = r.op
        if op == "Constant":
            return self._constant(r, a)
        if op in ("Dropout", "Identity"):
            if any(o in self.used for o in r.outputs[1:]):
                raise ValueError("the Dropout mask output is not supported")
            self.alias[r.outputs[0]] = ins[0]
            return
        layer, data = self._layer(op, a, ins)
        data = [i for i in data if i]
        if all(i in self.consts for i in data):   # fold: run it once, now
            out = layer.forward(*[self.consts[i] for i in data])
            self.consts[r.outputs[0]] = np.asarray(out)
            return
        extra = [o for o in r.outputs[1:] if o in self.used]
        if extra:
            raise ValueError(f"{op}'s extra outputs {extra} are not supported")
        self.nodes.append(Node(layer, tuple(data), (r.outputs[0],), r.name))

    def _constant(self, r, a):
        onnx = self.onnx
        if "value" in a:
            v = onnx.numpy_helper.to_array(a["value"])
        elif "value_float" in a:
            v = np.array(a["value_float"], np.float32)
        elif "value_floats" in a:
            v = np.array(a["value_floats"], np.float32)
        elif "value_int" in a:
            v = np.array(a["value_int"], np.int64)
        elif "value_ints" in a:
            v = np.array(a["value_ints"], np.int64)
        else:
            raise ValueError(f"Constant with attributes {sorted(a)} is not supported")
        self.consts[r.outputs[0]] = v

    def _opt_const(self, ins, k, what):
        return self.const(ins[k], what) if len(ins) > k and ins[k] else None

    def _layer(self, op, a, ins):
        """(layer, the value names it reads).  Weights go into the layer."""
        x = ins[:1]
        if op == "Conv":
            return self._conv(a, ins)
        if op == "Gemm":
            return self._gemm(a, ins)
        if op == "BatchNormalization":
            if a.get("training_mode", 0):
                raise ValueError("training_mode=1 is not supported (inference only)")
            if a.get("spatial", 1) == 0:
                raise ValueError("spatial=0 (statistics per activation) is not supported")
            s, bias, m, v = (self.const(ins[k], n) for k, n in
                             ((1, "scale"), (2, "B"), (3, "mean"), (4, "var")))
            return nn.BatchNorm2d(s, bias, m, v, a.get("epsilon", 1e-5)), x
        if op == "Relu":
            return nn.ReLU(), x
        if op == "LeakyRelu":
            return nn.LeakyReLU(a.get("alpha", 0.01)), x
        if op == "PRelu":
            slope = self.const(ins[1], "slope")
            if slope.size > 1 and slope.shape not in ((slope.size,), (slope.size, 1, 1),
                                                      (1, slope.size, 1, 1)):
                raise ValueError(f"PRelu slope of shape {slope.shape} is not per channel")
            return nn.PReLU(slope.reshape(-1)), x
        if op == "Sigmoid":
            return nn.Sigmoid(), x
        if op == "HardSigmoid":
            return nn.HardSigmoid(a.get("alpha", 0.2), a.get("beta", 0.5)), x
        if op == "HardSwish":
            return nn.HardSwish(), x
        if op == "Clip":
            if self.opset < 11:
                return nn.Clip(a.get("min"), a.get("max")), x
            lo, hi = self._opt_const(ins, 1, "min"), self._opt_const(ins, 2, "max")
            return nn.Clip(None if lo is None else float(lo), None if hi is None else float(hi)), x
        if op in ("MaxPool", "AveragePool"):
            return self._pool(op, a), x
        if op == "GlobalAveragePool":
            return nn.GlobalAvgPool2d(), x
        if op == "GlobalMaxPool":
            return nn.GlobalMaxPool2d(), x
        if op == "LRN":
            return nn.LRN(a["size"], a.get("alpha", 1e-4), a.get("beta", 0.75),
                          a.get("bias", 1.0)), x
        if op in ("Add", "Sum"):
            return nn.Add(), ins
        if op in ("Sub", "Mul", "Div"):
            return {"Sub": nn.Sub, "Mul": nn.Mul, "Div": nn.Div}[op](), ins
        if op == "MatMul":
            return nn.MatMul(), ins
        if op == "Concat":
            return nn.Concat(a["axis"]), ins
        if op == "Softmax":
            if self.opset < 13:
                return nn.AxisSoftmax(a.get("axis", 1), flatten=True), x
            return nn.AxisSoftmax(a.get("axis", -1)), x
        if op == "Flatten":
            if a.get("axis", 1) != 1:
                raise ValueError(f"Flatten axis {a['axis']} is not supported (only 1)")
            return nn.Flatten(), x
        if op == "Reshape":
            if ins[1] in self.consts:
                return nn.Reshape(self.consts[ins[1]], a.get("allowzero", 0)), x
            return nn.Reshape(None, a.get("allowzero", 0)), ins[:2]
        if op == "Transpose":
            return nn.Transpose(a.get("perm")), x
        if op in ("Squeeze", "Unsqueeze"):
            axes = a.get("axes") if self.opset < 13 else self._opt_const(ins, 1, "axes")
            if op == "Unsqueeze":
                if axes is None:
                    raise ValueError("Unsqueeze needs axes")
                return nn.Unsqueeze(axes), x
            return nn.Squeeze(axes), x
        if op == "Pad":
            return self._pad(a, ins), x
        if op == "Shape":
            return nn.Shape(a.get("start", 0), a.get("end")), x
        if op == "Gather":
            return nn.Gather(a.get("axis", 0)), ins[:2]
        if op == "Slice":
            if self.opset < 10:
                return nn.Slice(a["starts"], a["ends"], a.get("axes")), x
            return nn.Slice(self.const(ins[1], "starts"), self.const(ins[2], "ends"),
                            self._opt_const(ins, 3, "axes"), self._opt_const(ins, 4, "steps")), x
        if op == "Cast":
            return nn.Cast(self.onnx.helper.tensor_dtype_to_np_dtype(a["to"])), x
        if op == "ConstantOfShape":
            v = a.get("value")
            v = np.zeros(1, np.float32) if v is None else self.onnx.numpy_helper.to_array(v)
            return nn.ConstantOfShape(v.reshape(-1)[0], v.dtype), x
        raise ValueError(f"unsupported op type {op!r}; supported ops: {', '.join(SUPPORTED_OPS)}")

    def _conv(self, a, ins):
        w = self.const(ins[1], "the Conv weight")
        bias = self._opt_const(ins, 2, "the Conv bias")
        if w.ndim != 4:
            raise ValueError(f"only 2-D convolution is supported; weight has shape {w.shape}")
        if "kernel_shape" in a and tuple(a["kernel_shape"]) != w.shape[2:]:
            raise ValueError(f"kernel_shape {a['kernel_shape']} does not match the weight "
                             f"{w.shape}")
        stride, dilation = tuple(a.get("strides", (1, 1))), tuple(a.get("dilations", (1, 1)))
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        conv_in = ins[:1]
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            padding = 0
            name = f"{ins[0]}/same_pad/{len(self.nodes)}"
            self.nodes.append(Node(SamePad(w.shape[2:], stride, dilation, auto == "SAME_UPPER"),
                                   (ins[0],), (name,), name))
            conv_in = [name]
        elif auto == "VALID":
            padding = 0
        elif auto == "NOTSET":
            t, l, b, r = a.get("pads", (0, 0, 0, 0))
            padding = ((t, b), (l, r))
        else:
            raise ValueError(f"auto_pad {auto!r} is not supported")
        return nn.Conv2d(w, bias, _short(stride), _short_padding(padding), _short(dilation),
                         a.get("group", 1)), conv_in

    def _gemm(self, a, ins):
        alpha, beta = a.get("alpha", 1.0), a.get("beta", 1.0)
        ta, tb = a.get("transA", 0), a.get("transB", 0)
        b = self.resolve(ins[1])
        c = self._opt_const(ins, 2, "Gemm's C") if len(ins) > 2 and ins[2] and \
            ins[2] in self.consts else None
        if ta or b not in self.consts or (len(ins) > 2 and ins[2] and c is None):
            return GeneralGemm(alpha, beta, ta, tb), [i for i in ins if i]
        w = self.consts[b]
        w = w if tb else w.T
        bias_like = c is None or (c.ndim <= 1 or (c.ndim == 2 and c.shape[0] == 1)) and \
            c.size in (1, w.shape[0])
        if not bias_like:   # C varies by row: not a bias
            return GeneralGemm(alpha, beta, ta, tb), [i for i in ins if i]
        if alpha != 1:
            w = w * w.dtype.type(alpha)
        if c is not None:
            c = np.broadcast_to(c.reshape(-1) * c.dtype.type(beta), (w.shape[0],)).copy()
        return nn.Linear(np.ascontiguousarray(w), c), ins[:1]

    def _pool(self, op, a):
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto not in ("NOTSET", "VALID"):
            raise ValueError(f"{op} with auto_pad {auto!r} is not supported")
        k = tuple(a["kernel_shape"])
        if len(k) != 2:
            raise ValueError(f"only 2-D pooling is supported; kernel_shape {k}")
        t, l, b, r = a.get("pads", (0, 0, 0, 0)) if auto == "NOTSET" else (0, 0, 0, 0)
        pads, stride = ((t, b), (l, r)), tuple(a.get("strides", (1, 1)))
        ceil = bool(a.get("ceil_mode", 0))
        if op == "MaxPool":
            if a.get("storage_order", 0):
                raise ValueError("storage_order=1 is not supported")
            return nn.MaxPool(k, stride, pads, tuple(a.get("dilations", (1, 1))), ceil)
        if tuple(a.get("dilations", (1, 1))) != (1, 1):
            raise ValueError("AveragePool with dilations is not supported")
        return nn.AveragePool(k, stride, pads, ceil, bool(a.get("count_include_pad", 0)))

    def _pad(self, a, ins):
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if self.opset < 11:
            return nn.Pad(a["pads"], mode, a.get("value", 0.0))
        if len(ins) > 3 and ins[3]:
            raise ValueError("Pad with axes is not supported")
        value = self._opt_const(ins, 2, "constant_value")
        return nn.Pad(self.const(ins[1], "pads"), mode,
                      0.0 if value is None else float(np.asarray(value).reshape(-1)[0]))


def _short(pair):
    """(s, s) -> s, as a layer written by hand would say it (and print it)."""
    return pair[0] if len(set(pair)) == 1 else pair


def _short_padding(padding):
    if padding == 0:
        return 0
    (t, b), (l, r) = padding
    return _short((t, l)) if (t, l) == (b, r) else padding


class SamePad(nn.Module):
    """Zero padding for auto_pad SAME_UPPER/SAME_LOWER: output size ceil(in / stride)."""

    def __init__(self, kernel, stride, dilation, upper):
        self.kernel, self.stride, self.dilation, self.upper = kernel, stride, dilation, upper

    def _pads(self, size):
        pads = []
        for n, k, s, d in zip(size, self.kernel, self.stride, self.dilation):
            total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
            small = total // 2
            pads.append((small, total - small) if self.upper else (total - small, small))
        return pads

    def forward(self, x):
        x = np.asarray(x)
        return np.pad(x, [(0, 0), (0, 0)] + self._pads(x.shape[2:]))

    def output_shape(self, shape):
        return (shape[0],) + tuple(n + a + b for n, (a, b) in zip(shape[1:], self._pads(shape[1:])))


class GeneralGemm(nn.Module):
    """alpha * A' @ B' + beta * C for operands not known at load."""

    def __init__(self, alpha, beta, trans_a, trans_b):
        self.alpha, self.beta, self.trans_a, self.trans_b = alpha, beta, trans_a, trans_b

    def forward(self, a, b, c=None):
        a = a.T if self.trans_a else a
        b = b.T if self.trans_b else b
        y = nn.MatMul().forward(np.ascontiguousarray(a), np.ascontiguousarray(b)) * self.alpha
        return y if c is None else y + self.beta * c


def _fold_batchnorm(graph: Graph) -> Graph:
    """A BatchNorm2d that alone reads a Conv2d's output becomes part of that conv."""
    readers = {}
    for n in graph.nodes:
        for i in n.inputs:
            readers.setdefault(i, []).append(n)
    producer = {n.outputs[0]: n for n in graph.nodes}
    out, dropped = [], set()
    for n in graph.nodes:
        if id(n) in dropped:
            continue
        src = producer.get(n.inputs[0]) if n.inputs else None
        if isinstance(n.layer, nn.BatchNorm2d) and src is not None and \
                isinstance(src.layer, nn.Conv2d) and not src.relu and \
                len(readers[src.outputs[0]]) == 1 and src.outputs[0] not in graph.outputs and \
                n.layer.scale.shape[0] == src.layer.weight_shape[0]:
            conv, (scale, shift) = src.layer, n.layer.affine()
            w = conv.weight.astype(np.float64) * scale[:, None, None, None]
            bias = shift if conv.bias is None else shift + scale * conv.bias.astype(np.float64)
            fused = nn.Conv2d(w.astype(conv.weight.dtype), bias.astype(conv.weight.dtype),
                              conv.stride, conv.padding, conv.dilation, conv.groups,
                              conv.algorithm)
            i = next(k for k, m in enumerate(out) if m is src)
            out[i] = Node(fused, src.inputs, n.outputs, src.name)
            continue
        out.append(n)
    return graph.replace_nodes(out)
