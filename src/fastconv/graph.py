"""`Graph`: a network that is not a chain -- a DAG of layers over named values.

    g = nn.Graph(inputs=["x"], outputs=["y"], nodes=[
        nn.Node(nn.Conv2d(w1, b1, padding=1), ["x"], ["a"]),
        nn.Node(nn.ReLU(), ["a"], ["b"]),
        nn.Node(nn.Add(), ["b", "x"], ["y"]),        # a residual connection
    ])
    y = g(x)

Nodes may be listed in any order; the constructor sorts them topologically
(a cycle is a ValueError), drops nodes no output depends on, and hands a ReLU
(or a Clip to [0, hi], clamped in the same store) that is the only consumer of
a Conv2d/Linear output to that layer's kernel (and a ReLU after an Add to the Add).  A call keeps
each activation only until its last consumer has run; an Add writes its sum
into an input that dies with it when no other value shares that memory, and
convolutions whose outputs only a channel Concat reads write straight into
its output.  Several inputs are positional in `inputs` order; several
outputs come back as a tuple.  `fastconv.onnx.load` builds the same object.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace

import numpy as np

from . import _args
from .nn import Conv2d, Flatten, Linear, Module, PReLU, ReLU, _as_conv_weight
from .nn import Softmax as _ChannelSoftmax
from . import layers as L


@dataclass(frozen=True)
class Node:
    """One layer applied to named values.  relu / negative_slope / clip_max:
    an epilogue run in (relu, PReLU slopes; clip_max above 0 after a ReLU in
    a Conv2d/Linear) or right after (clip_max otherwise) the layer's kernel;
    set by fusion."""
    layer: Module
    inputs: tuple
    outputs: tuple
    name: str = ""
    relu: bool = False
    clip_max: float | None = None
    negative_slope: object = None
    #: The last input is added to a Conv2d's result before the epilogue (an
    #: Add fused into the conv; set by fusion).
    residual: bool = False

    def __post_init__(self):
        if not isinstance(self.layer, Module):
            raise TypeError(f"node {self.name!r}: layer must be a fastconv.nn Module; "
                            f"got {type(self.layer).__name__}")
        for field in ("inputs", "outputs"):
            names = getattr(self, field)
            names = (names,) if isinstance(names, str) else tuple(names)
            if not all(isinstance(n, str) and n for n in names):
                raise TypeError(f"node {self.name!r}: {field} must be non-empty strings; "
                                f"got {names!r}")
            object.__setattr__(self, field, names)
        if not self.outputs:
            raise ValueError(f"node {self.name!r} has no outputs")

    def describe(self) -> str:
        extra = (f" + {self.inputs[-1]}" if self.residual else "") + \
            (" + ReLU" if self.relu else "") + \
            (" + PReLU" if self.negative_slope is not None else "") + \
            (f" + min({self.clip_max:g})" if self.clip_max is not None else "")
        return repr(self.layer) + extra


def _as_node(n, i) -> Node:
    if not isinstance(n, Node):
        if not isinstance(n, (tuple, list)) or len(n) not in (3, 4):
            raise TypeError(f"nodes must be Node, (layer, inputs, outputs[, name]) or "
                            f"(name, layer, inputs, outputs); got {n!r}")
        n = Node(n[1], n[2], n[3], n[0]) if len(n) == 4 and isinstance(n[0], str) else Node(*n)
    return n if n.name else replace(n, name=f"node{i}")


def topological_order(nodes, available):
    """`nodes` ordered so each runs after the nodes producing its inputs.
    `available`: names known before any node runs (inputs and constants)."""
    producer = {}
    for n in nodes:
        for o in n.outputs:
            if o in producer or o in available:
                raise ValueError(f"value {o!r} is produced twice (node {n.name!r})")
            producer[o] = n
    for n in nodes:
        for i in n.inputs:
            if i not in producer and i not in available:
                raise ValueError(f"node {n.name!r} reads {i!r}, which no node, input or "
                                 f"constant provides")
    order, state = [], {}  # state: 1 = on the current path, 2 = done
    for root in nodes:
        if state.get(id(root)) == 2:
            continue
        stack = [(root, iter(root.inputs))]
        state[id(root)] = 1
        while stack:
            node, deps = stack[-1]
            for name in deps:
                dep = producer.get(name)
                if dep is None or state.get(id(dep)) == 2:
                    continue
                if state.get(id(dep)) == 1:
                    cycle = [s[0].name for s in stack[[s[0] for s in stack].index(dep):]]
                    raise ValueError(f"the graph has a cycle through nodes {cycle}")
                state[id(dep)] = 1
                stack.append((dep, iter(dep.inputs)))
                break
            else:
                state[id(node)] = 2
                order.append(node)
                stack.pop()
    return order


class Graph(Module):
    """A DAG of layers; see the module docstring.

    inputs / outputs: value names.  constants: {name: array} values fixed at
    construction (their float entries count as parameters).  input_shapes:
    optional full shapes per input, None for a free axis; a call checks the
    rank and the channel count (axis 1) against them.  input_dtypes likewise.
    """

    def __init__(self, nodes, inputs, outputs, constants=None, input_shapes=None,
                 input_dtypes=None):
        self.inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
        self.outputs = (outputs,) if isinstance(outputs, str) else tuple(outputs)
        if not self.outputs:
            raise ValueError("a Graph needs at least one output")
        if len(set(self.inputs)) != len(self.inputs):
            raise ValueError(f"input names repeat: {self.inputs}")
        self.constants = {k: np.asarray(v) for k, v in (constants or {}).items()}
        if set(self.constants) & set(self.inputs):
            raise ValueError(f"names are both input and constant: "
                             f"{sorted(set(self.constants) & set(self.inputs))}")
        self.input_shapes = None if input_shapes is None else [
            None if s is None else tuple(s) for s in input_shapes]
        self.input_dtypes = None if input_dtypes is None else [
            None if d is None else np.dtype(d) for d in input_dtypes]
        for what, v in (("input_shapes", self.input_shapes), ("input_dtypes", self.input_dtypes)):
            if v is not None and len(v) != len(self.inputs):
                raise ValueError(f"{what} has {len(v)} entries for {len(self.inputs)} inputs")
        nodes = [_as_node(n, i) for i, n in enumerate(nodes)]
        known = set(self.inputs) | set(self.constants)
        for o in self.outputs:
            if o not in known and not any(o in n.outputs for n in nodes):
                raise ValueError(f"output {o!r} is not produced by any node, input or constant")
        order = topological_order(nodes, known)
        self.nodes = _fuse_residual(_fuse(_live(order, self.outputs), self.outputs),
                                    self.outputs)
        self._plan = self._frees()
        self._slots = _concat_slots(self.nodes, self.outputs)
        self._slot_shapes = {}
        self._buffers = _Buffers()

    # -- running ---------------------------------------------------------------

    def _frees(self):
        """Per node, the values whose last reader it is (dropped right after it runs)."""
        last = {}
        for i, n in enumerate(self.nodes):
            for name in n.inputs:
                last[name] = i
        keep = set(self.outputs) | set(self.constants)
        frees = [[] for _ in self.nodes]
        for name, i in last.items():
            if name not in keep:
                frees[i].append(name)
        for i, n in enumerate(self.nodes):   # outputs nobody reads go at once
            frees[i].extend(o for o in n.outputs if o not in last and o not in keep)
        return [tuple(sorted(set(f))) for f in frees]

    def _check_inputs(self, xs):
        if len(xs) != len(self.inputs):
            raise TypeError(f"this Graph takes {len(self.inputs)} input(s) {list(self.inputs)}; "
                            f"got {len(xs)}")
        checked = []
        for i, (name, x) in enumerate(zip(self.inputs, xs)):
            x = _args.float_array(f"input {name!r}", x)
            if self.input_dtypes is not None and self.input_dtypes[i] is not None \
                    and x.dtype != self.input_dtypes[i]:
                raise TypeError(f"input {name!r} must be {self.input_dtypes[i]}; "
                                f"got {x.dtype}")
            shape = None if self.input_shapes is None else self.input_shapes[i]
            if shape is not None:
                if x.ndim != len(shape):
                    raise ValueError(f"input {name!r} must be {len(shape)}-D "
                                     f"{_fmt(shape)}; got shape {x.shape}")
                if len(shape) > 1 and shape[1] is not None and x.shape[1] != shape[1]:
                    raise ValueError(f"input {name!r} must have {shape[1]} channels "
                                     f"{_fmt(shape)}; got shape {x.shape}")
            checked.append(x)
        return checked

    def forward(self, *xs):
        xs = self._check_inputs(xs)
        lent = self._buffers.start(tuple((x.shape, x.dtype) for x in xs))
        try:
            out = self._run(xs, lent)
        except BaseException:
            self._buffers.give_back(lent)
            raise
        self._buffers.finish(lent)
        return out

    def _run(self, xs, lent):
        env = dict(self.constants)
        env.update(zip(self.inputs, xs))
        joined = {}   # Concat output name -> its buffer, while its inputs are written
        for i, (node, frees) in enumerate(zip(self.nodes, self._plan)):
            args = [env[name] for name in node.inputs]
            kwargs = {"relu": True} if node.relu else {}
            clip = node.clip_max
            if clip is not None and clip > 0 and node.relu and \
                    isinstance(node.layer, (Conv2d, Linear)):   # ReLU6: clamped in the store
                kwargs["clip_max"], clip = clip, None
            if node.negative_slope is not None:
                kwargs["negative_slope"] = node.negative_slope
            if node.residual:
                kwargs["residual"] = args.pop()
                buf = _residual_buffer(i, node, args[0], kwargs["residual"], frees, env, xs,
                                       self._slot_shapes)
                if buf is None:   # the skip lives on: the sum goes to a buffer of its own
                    buf = self._buffers.lend(i, node, args[0], self._slot_shapes, lent)
                if buf is not None:
                    kwargs["out"] = buf
            elif type(node.layer) is L.Add and len(args) == 2:
                buf = _dead_buffer(node, frees, args, env, xs)
                if buf is not None:
                    kwargs["out"] = buf
            elif i in self._slots:
                buf = _slot(i, node, args[0], self._slots[i], joined, self._slot_shapes)
                if buf is not None:
                    kwargs["out"] = buf
            elif type(node.layer) is L.Concat and node.outputs[0] in joined:
                buf = joined.pop(node.outputs[0])
                if all(a.base is buf or a is buf for a in args):  # every input went there
                    env[node.outputs[0]] = buf
                    for name in frees:
                        del env[name]
                    continue
            elif type(node.layer) is Conv2d:
                buf = self._buffers.lend(i, node, args[0], self._slot_shapes, lent)
                if buf is not None:
                    kwargs["out"] = buf
            try:
                y = node.layer.forward(*args, **kwargs)
            except (ValueError, TypeError) as e:
                raise _same_kind(e)(f"node {node.name!r} ({node.describe()}): {e}") from e
            if clip is not None:
                np.minimum(y, clip, out=y)  # y is the kernel's fresh output
            if len(node.outputs) == 1:
                env[node.outputs[0]] = y
            else:
                env.update(zip(node.outputs, y))
            if lent:
                dead = [env.pop(name) for name in frees]
                self._buffers.release(dead, env, xs, lent)
                del dead   # the values die here, as without borrowed buffers
            else:
                for name in frees:
                    del env[name]
        out = tuple(env[name] for name in self.outputs)
        return out[0] if len(out) == 1 else out

    def __call__(self, *xs):
        return self.forward(*xs)

    # -- shapes, parameters, FLOPs ----------------------------------------------

    def _infer(self, shapes):
        """Per value: its full shape with a batch of 1 (a tuple), or, for values
        known without running the network (constants, shape arithmetic), the array."""
        if len(shapes) != len(self.inputs):
            raise TypeError(f"this Graph takes {len(self.inputs)} input shape(s); "
                            f"got {len(shapes)}")
        vals = dict(self.constants)
        vals.update({name: (1,) + tuple(s) for name, s in zip(self.inputs, shapes)})
        rows = []
        for node in self.nodes:
            args = [vals[name] for name in node.inputs]
            own = args[:len(args) - node.residual]   # a residual adds nothing to the shape
            per = [a if isinstance(a, np.ndarray) else tuple(a[1:]) for a in own]
            flops = 0
            try:
                if all(isinstance(a, np.ndarray) for a in args):
                    extra = {"residual": args[-1]} if node.residual else {}
                    out = np.asarray(node.layer.forward(*own, **extra))
                elif isinstance(node.layer, L.Shape):
                    out = np.array(args[0][node.layer.start:node.layer.end], np.int64)
                else:
                    out = (1,) + tuple(node.layer.output_shape(*per))
                    if not isinstance(per[0], np.ndarray):
                        flops = node.layer.flops(*per) if len(per) > 1 and \
                            isinstance(node.layer, L.MatMul) else node.layer.flops(per[0])
            except (ValueError, TypeError) as e:
                raise _same_kind(e)(f"node {node.name!r} ({node.describe()}): {e}") from e
            vals[node.outputs[0]] = out
            params = node.layer.params() + sum(
                a.size for name, a in zip(node.inputs, args)
                if name in self.constants and a.dtype.kind == "f")
            rows.append((node, out, params, flops))
        return vals, rows

    def output_shape(self, *shapes):
        vals, _ = self._infer(shapes)
        out = tuple(_strip(vals[name]) for name in self.outputs)
        return out[0] if len(out) == 1 else out

    def params(self) -> int:
        counted = {name for n in self.nodes for name in n.inputs if name in self.constants}
        return sum(n.layer.params() for n in self.nodes) + sum(
            self.constants[c].size for c in counted if self.constants[c].dtype.kind == "f")

    def flops(self, *shapes) -> int:
        return sum(r[3] for r in self._infer(shapes)[1])

    def summary_rows(self, *shapes):
        """nn.LayerInfo per node (what nn.summary prints)."""
        from .nn import LayerInfo
        _, rows = self._infer(shapes)
        return tuple(LayerInfo(i, f"{node.name}: {node.describe()}", _strip(out), params, flops,
                               isinstance(node.layer, Linear))
                     for i, (node, out, params, flops) in enumerate(rows))

    @property
    def layers(self):
        return [n.layer for n in self.nodes]

    def __repr__(self):
        lines = [f"Graph(inputs={list(self.inputs)}, outputs={list(self.outputs)}, "
                 f"{len(self.nodes)} nodes"]
        lines += [f"  {','.join(n.outputs)} = {n.describe()}({', '.join(n.inputs)})"
                  for n in self.nodes]
        return "\n".join(lines) + "\n)"

    # -- rewrites ----------------------------------------------------------------

    def replace_nodes(self, nodes) -> "Graph":
        """A Graph with the same inputs, outputs and constants over `nodes`."""
        return Graph(nodes, self.inputs, self.outputs, self.constants, self.input_shapes,
                     self.input_dtypes)

    def to_fully_convolutional(self, input_shape) -> "Graph":
        """As nn.to_fully_convolutional: the Linear head after a Flatten (or a
        Reshape that flattens a (C, H, W) map) becomes a full-size Conv2d, later
        Linears 1x1 Conv2ds, softmax runs over channels.  Spatial input sizes are
        then free; at `input_shape` the outputs are (classes, 1, 1) per sample."""
        if len(self.inputs) != 1:
            raise ValueError("to_fully_convolutional takes a Graph with one input")
        vals, _ = self._infer([tuple(input_shape)])
        # name -> the (C, H, W) it flattens, or () once a Linear has run.
        flat, nodes = {}, []
        for node in self.nodes:
            src = [flat[i] for i in node.inputs if i in flat]
            layer, inputs = node.layer, node.inputs
            if not src:
                shape_in = vals[node.inputs[0]] if node.inputs else None
                flattens = isinstance(layer, (Flatten, L.Reshape)) and \
                    isinstance(shape_in, tuple) and len(shape_in) == 4
                if flattens and len(_strip(vals[node.outputs[0]])) == 1:
                    flat[node.outputs[0]] = _strip(shape_in)
                    layer, inputs = L.Identity(), node.inputs[:1]
                nodes.append(replace(node, layer=layer, inputs=inputs))
                continue
            chw = src[0]
            if isinstance(layer, Linear):
                if chw == ():
                    chw = (layer.weight_shape[1], 1, 1)
                layer, chw = Conv2d(_as_conv_weight(layer, chw), layer._bias), ()
            elif isinstance(layer, (L.AxisSoftmax, _ChannelSoftmax)):
                layer = L.AxisSoftmax(axis=1)
            elif not isinstance(layer, (ReLU, PReLU, L.LeakyReLU, L.Clip, L.Sigmoid,
                                        L.HardSigmoid, L.HardSwish, L.Identity)) \
                    or len(node.inputs) != 1:
                raise ValueError(f"to_fully_convolutional: cannot convert node {node.name!r} "
                                 f"({node.describe()}) after the Flatten")
            for o in node.outputs:
                flat[o] = chw
            nodes.append(replace(node, layer=layer))
        if not flat:
            raise ValueError("to_fully_convolutional: the graph has no Flatten of a (C, H, W) "
                             "map; it already is fully convolutional")
        shapes = None if self.input_shapes is None else [
            None if s is None else s[:2] + (None,) * (len(s) - 2) for s in self.input_shapes]
        return Graph(nodes, self.inputs, self.outputs, self.constants, shapes,
                     self.input_dtypes)


def _concat_slots(nodes, outputs):
    """{index of a Conv2d node: (Concat output, first channel, end channel,
    channels in all)} for each Concat along channels whose inputs are all
    Conv2d outputs read by that Concat alone: the convs write into slices of
    one buffer, and the Concat has nothing left to copy."""
    producer = {n.outputs[0]: (i, n) for i, n in enumerate(nodes)}
    readers = {}
    for n in nodes:
        for name in n.inputs:
            readers[name] = readers.get(name, 0) + 1
    slots = {}
    for n in nodes:
        if type(n.layer) is not L.Concat or n.layer.axis != 1 or not n.inputs or \
                len(set(n.inputs)) != len(n.inputs):
            continue
        parts = [producer.get(name) for name in n.inputs]
        if not all(p is not None and type(p[1].layer) is Conv2d and not p[1].residual
                   and len(p[1].outputs) == 1
                   and readers[name] == 1 and name not in outputs
                   for p, name in zip(parts, n.inputs)):
            continue
        widths = [p[1].layer.weight_shape[0] for p in parts]
        total, lo = sum(widths), 0
        for (i, _), k in zip(parts, widths):
            slots[i] = (n.outputs[0], lo, lo + k, total)
            lo += k
    return slots


def _out_shape(i, node, x, shapes):
    """Node i's per-sample output shape on x, or None if the layer refuses x.
    shapes: {(node index, input shape): output shape}, a cache (the check
    behind output_shape costs as much as a small conv)."""
    key = (i, np.shape(x))
    shape = shapes.get(key)
    if shape is None:
        try:
            shape = shapes[key] = tuple(node.layer.output_shape(key[1][1:]))
        except (ValueError, TypeError):
            return None
    return shape


class _Buffers:
    """Conv outputs of a Graph's calls, kept for its later calls: a value's
    buffer goes back when the value and every view of it have died, and the
    next conv of that shape and dtype writes into it, so repeated calls fault
    in and zero no fresh pages for their activations.  Buffers that leave as
    outputs are the caller's.  Kept for one set of input shapes at a time
    (another one empties the store); threads calling at once take distinct
    buffers."""

    def __init__(self):
        self._lock = threading.Lock()
        self._key = None
        self._free = {}     # (shape, dtype) -> buffers no call holds

    def start(self, key):
        """The list of buffers this call borrows (lend / release fill it)."""
        if key != self._key:
            with self._lock:
                self._key, self._free = key, {}
        return []

    def lend(self, i, node, x, shapes, lent):
        """A buffer for Conv2d node i's output on x, or None (a shape the
        layer refuses or a dtype it converts: its own call decides)."""
        shape = _out_shape(i, node, x, shapes)
        if shape is None or not isinstance(x, np.ndarray) or \
                x.dtype != node.layer._weight.dtype:
            return None
        key = ((x.shape[0],) + shape, x.dtype)
        with self._lock:
            free = self._free.get(key)
            buf = free.pop() if free else None
        if buf is None:
            buf = np.empty(*key)
        lent.append(buf)
        return buf

    def release(self, dead, env, xs, lent):
        """Return the borrowed buffers among `dead` values' memory that no
        live value (env, the inputs xs) still shares."""
        for v in dead:
            root = v if not isinstance(v, np.ndarray) or v.base is None else v.base
            if not any(root is b for b in lent):
                continue
            if any(isinstance(a, np.ndarray) and (a is root or a.base is root)
                   for a in list(env.values()) + list(xs)):
                continue
            lent[:] = [b for b in lent if b is not root]
            self._put(root)

    def give_back(self, lent):
        """After a failed call: everything it borrowed is free again."""
        for b in lent:
            self._put(b)
        lent.clear()

    def finish(self, lent):
        lent.clear()   # what is still held left as (part of) an output

    def _put(self, buf):
        with self._lock:
            self._free.setdefault((buf.shape, buf.dtype), []).append(buf)


def _slot(i, node, x, slot, joined, shapes):
    """The slice of its Concat's buffer that `node` (a Conv2d) writes, or None
    (this input's shape or dtype does not fit; the Concat then runs itself).
    shapes: the cache of _out_shape."""
    name, lo, hi, total = slot
    shape = _out_shape(i, node, x, shapes)
    if shape is None:
        return None     # the layer's own call reports it
    n, dtype = np.shape(x)[0], node.layer._weight.dtype   # the weight stays lazy
    buf = joined.get(name)
    if buf is None:
        buf = joined[name] = np.empty((n, total) + shape[1:], dtype)
    if buf.shape[0] != n or buf.shape[2:] != shape[1:] or buf.dtype != dtype:
        return None
    return buf[:, lo:hi]


def _residual_buffer(i, node, x, residual, frees, env, inputs, shapes):
    """The residual input of Conv2d node `i` when the conv can write its sum
    over it (it dies with the node, has the result's shape and dtype, and
    shares memory with no other live value), or None.  shapes: the cache of _out_shape."""
    name = node.inputs[-1]
    if name not in frees or node.inputs.count(name) > 1 or not isinstance(residual, np.ndarray) \
            or not residual.flags.writeable or not residual.flags.c_contiguous \
            or residual.dtype != node.layer._weight.dtype:
        return None
    shape = _out_shape(i, node, x, shapes)
    if shape is None:
        return None     # the layer's own call reports it
    if residual.shape != (np.shape(x)[0],) + shape:
        return None
    others = [v for k, v in env.items() if k != name] + list(inputs)
    if any(isinstance(v, np.ndarray) and np.may_share_memory(residual, v) for v in others):
        return None
    return residual


def _dead_buffer(node, frees, args, env, inputs):
    """An input of `node` that dies with it and can take its result in place:
    an array of the result's shape and dtype that no other live value, graph
    input or constant shares memory with (views made by Flatten, Reshape,
    Identity, ... do share it), or None."""
    if not all(isinstance(a, np.ndarray) for a in args):
        return None
    dtype = np.result_type(*args)
    try:
        shape = np.broadcast_shapes(*(a.shape for a in args))
    except ValueError:
        return None    # the layer's own call reports it
    for name, a in zip(node.inputs, args):
        if name not in frees or a.shape != shape or a.dtype != dtype or \
                not a.flags.writeable or node.inputs.count(name) > 1:
            continue
        others = [v for k, v in env.items() if k != name] + list(inputs)
        if not any(isinstance(v, np.ndarray) and np.may_share_memory(a, v) for v in others):
            return a
    return None


def _same_kind(e):
    """TypeError or ValueError, as `e` is (subclasses may not take a message)."""
    return TypeError if isinstance(e, TypeError) else ValueError


def _strip(v):
    """Per-sample shape of an inferred value."""
    return v.shape if isinstance(v, np.ndarray) else tuple(v[1:])


def _fmt(shape):
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _live(order, outputs):
    """Only the nodes some output depends on."""
    needed, live = set(outputs), []
    for node in reversed(order):
        if needed & set(node.outputs):
            live.append(node)
            needed.update(node.inputs)
    return live[::-1]


def _fuse(nodes, outputs):
    """Hand a ReLU, PReLU, LeakyReLU or Clip(0, hi) that alone reads a
    Conv2d/Linear output to that node, and a ReLU that alone reads an Add's."""
    readers = {}
    for n in nodes:
        for i in n.inputs:
            readers.setdefault(i, []).append(n)
    out, dropped = [], set()
    for n in nodes:
        if id(n) in dropped:
            continue
        if isinstance(n.layer, (Conv2d, Linear)) and not n.relu and n.clip_max is None \
                and n.negative_slope is None and len(n.outputs) == 1 \
                and n.outputs[0] not in outputs:
            users = readers.get(n.outputs[0], [])
            user = users[0] if len(users) == 1 and len(users[0].inputs) == 1 else None
            if user is not None and type(user.layer) is ReLU:
                n = replace(n, outputs=user.outputs, relu=True)
                dropped.add(id(user))
            elif user is not None and isinstance(user.layer, L.Clip) and user.layer.low == 0:
                n = replace(n, outputs=user.outputs, relu=True, clip_max=user.layer.high)
                dropped.add(id(user))
            elif user is not None and type(user.layer) is PReLU and \
                    user.layer.slope.size in (1, n.layer.weight_shape[0]):
                n = replace(n, outputs=user.outputs, negative_slope=user.layer.slope)
                dropped.add(id(user))
            elif user is not None and type(user.layer) is L.LeakyReLU:
                n = replace(n, outputs=user.outputs, negative_slope=user.layer.alpha)
                dropped.add(id(user))
        elif type(n.layer) is L.Add and not n.relu and n.outputs[0] not in outputs:
            users = readers.get(n.outputs[0], [])   # a residual block's closing ReLU
            if len(users) == 1 and len(users[0].inputs) == 1 and type(users[0].layer) is ReLU:
                n = replace(n, outputs=users[0].outputs, relu=True)
                dropped.add(id(users[0]))
        out.append(n)
    return out


def _fuse_residual(nodes, outputs):
    """A Conv2d with no epilogue whose output only a two-input Add reads takes
    the Add's other input as its residual (added in the conv's store, before
    the Add's ReLU) and runs where the Add ran, when both inputs exist."""
    readers = {}
    for n in nodes:
        for name in n.inputs:
            readers.setdefault(name, []).append(n)
    merged, dropped = {}, set()
    for n in nodes:
        if type(n.layer) is not Conv2d or n.relu or n.clip_max is not None or \
                n.negative_slope is not None or n.residual or len(n.outputs) != 1 or \
                n.outputs[0] in outputs:
            continue
        users = readers.get(n.outputs[0], [])
        add = users[0] if len(users) == 1 else None
        if add is None or type(add.layer) is not L.Add or len(add.inputs) != 2 or \
                id(add) in merged or add.clip_max is not None:
            continue
        other = [name for name in add.inputs if name != n.outputs[0]]
        if len(other) != 1:
            continue    # conv(x) + conv(x)
        merged[id(add)] = replace(n, inputs=n.inputs + (other[0],), outputs=add.outputs,
                                  relu=add.relu, residual=True)
        dropped.add(id(n))
    return [merged.get(id(n), n) for n in nodes if id(n) not in dropped]
