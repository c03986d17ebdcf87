"""`compress_fc`: FC layers as two thinner ones from a truncated SVD.

A Linear with weight W (out x in) becomes Linear(V_r^T) then Linear(U_r S_r):
out*in parameters become rank*(out + in), and the product U_r S_r V_r^T is
the best rank-r approximation of W (Eckart-Young), so the error it causes is
the smallest any rank-r factorisation can.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import _args


@dataclass(frozen=True)
class FactorRow:
    layer: str
    shape: tuple          # (out_features, in_features)
    rank: int
    params_before: int
    params_after: int
    weight_error: float   # ||W - W_r||_F / ||W||_F


@dataclass(frozen=True)
class CompressReport:
    rows: tuple
    params_before: int    # the whole model's
    params_after: int
    output_error: float | None   # max |y - y_compressed| / max |y| on the sample, if given

    def __str__(self):
        lines = [f"{'layer':<24} {'shape':>12} {'rank':>5} {'params':>12} {'after':>12} "
                 f"{'W error':>8}"]
        for r in self.rows:
            lines.append(f"{r.layer:<24} {'x'.join(map(str, r.shape)):>12} {r.rank:>5} "
                         f"{r.params_before:>12,} {r.params_after:>12,} {r.weight_error:>8.4f}")
        lines.append(f"model: {self.params_before:,} -> {self.params_after:,} parameters "
                     f"({100 * self.params_after / max(self.params_before, 1):.1f}%)")
        if self.output_error is not None:
            lines.append(f"output error on the sample: {self.output_error:.3g} of its magnitude")
        return "\n".join(lines)


def factor_linear(linear, rank):
    """(first, second, relative weight error): two Linears whose composition is
    the rank-`rank` truncated SVD of `linear`."""
    from .nn import Linear
    w = linear.weight
    out_f, in_f = w.shape
    if not _args._is_int(rank) or not 1 <= rank <= min(out_f, in_f):
        raise ValueError(f"rank must be an int in [1, {min(out_f, in_f)}] for {linear!r}; "
                         f"got {rank!r}")
    u, s, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
    first = Linear(np.ascontiguousarray(vt[:rank]).astype(w.dtype))
    second = Linear(np.ascontiguousarray(u[:, :rank] * s[:rank]).astype(w.dtype), linear.bias)
    err = float(np.sqrt(np.sum(s[rank:] ** 2) / max(np.sum(s ** 2), np.finfo(float).tiny)))
    return first, second, err


def compress_fc(model, rank, layers=None, sample=None):
    """Replace Linear layers of `model` (an nn.Sequential or nn.Graph) by two
    thinner Linears from a truncated SVD; returns (new model, CompressReport).

    rank: an int for every chosen layer, or {layer: rank}.  layers: which ones
    (Sequential indices or Graph node names); default every Linear, or the
    keys of a rank dict.  sample: an input batch; the report then gives the
    output error the compression causes on it.  `model` is not changed.
    """
    from .graph import Graph, Node
    from .nn import Linear, Sequential
    if isinstance(model, Sequential):
        items = [(i, layer) for i, layer in enumerate(model.layers)]
    elif isinstance(model, Graph):
        items = [(n.name, n.layer) for n in model.nodes]
    else:
        raise TypeError(f"model must be an nn.Sequential or nn.Graph; got {type(model).__name__}")
    linear = {key for key, layer in items if isinstance(layer, Linear)}
    if layers is None:
        layers = list(rank) if isinstance(rank, dict) else [k for k, _ in items if k in linear]
    layers = list(layers)
    for key in layers:
        if key not in linear:
            raise ValueError(f"layer {key!r} is not a Linear of this model; Linears: "
                             f"{sorted(linear, key=str)}")
    ranks = {k: (rank[k] if isinstance(rank, dict) else rank) for k in layers}
    rows, new = [], {}
    for key, layer in items:
        if key in ranks:
            first, second, err = factor_linear(layer, ranks[key])
            new[key] = (first, second)
            rows.append(FactorRow(str(key), layer.weight_shape, ranks[key], layer.params(),
                                  first.params() + second.params(), err))
    if isinstance(model, Sequential):
        out_layers = []
        for i, layer in enumerate(model.layers):
            out_layers.extend(new.get(i, (layer,)))
        out = Sequential(*out_layers, input_shape=model.input_shape)
    else:
        nodes = []
        for n in model.nodes:
            if n.name in new:
                first, second = new[n.name]
                mid = f"{n.name}/rank{ranks[n.name]}"
                nodes.append(Node(first, n.inputs, (mid,), mid))
                nodes.append(replace(n, layer=second, inputs=(mid,)))
            else:
                nodes.append(n)
        out = model.replace_nodes(nodes)
    error = None
    if sample is not None:
        y, yc = model(sample), out(sample)
        error = float(np.abs(np.asarray(y, np.float64) - yc).max() /
                      max(float(np.abs(y).max()), np.finfo(float).tiny))
    return out, CompressReport(tuple(rows), model.params(), out.params(), error)
