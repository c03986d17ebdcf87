"""Weights for the model zoo: deterministic seeded initialisation and .npz files.

Parameters are named as in a PyTorch nn.Sequential's state_dict: "<layer
index>.weight" and "<layer index>.bias" (a PReLU's slope is its "weight"), so a
torch model with the same layer order saves straight into these files.
"""
from __future__ import annotations

import os

import numpy as np

from .. import nn


def seeded(shape, fan_in: int, seed: int, index: int, scale: float = 2.0) -> nn.Lazy:
    """float32 N(0, scale/fan_in) weights (He initialisation), made on first use;
    the same (seed, layer index) always gives the same array."""
    def make():
        rng = np.random.default_rng([seed, index])
        w = rng.standard_normal(shape, dtype=np.float32)
        w *= np.float32(np.sqrt(scale / fan_in))
        return w
    return nn.Lazy(shape, np.float32, make)


def seeded_bias(k: int, seed: int, index: int) -> nn.Lazy:
    """Small float32 seeded biases (nonzero, so the bias path is exercised)."""
    return nn.Lazy((k,), np.float32,
                   lambda: np.random.default_rng([seed, index, 1]).uniform(-0.05, 0.05, k)
                   .astype(np.float32))


def state_dict(layers) -> dict:
    """{"<i>.weight": array, "<i>.bias": array} for every layer with parameters."""
    state = {}
    for i, layer in enumerate(layers):
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            state[f"{i}.weight"] = layer.weight
            if layer.bias is not None:
                state[f"{i}.bias"] = layer.bias
        elif isinstance(layer, nn.PReLU):
            state[f"{i}.weight"] = layer.slope
    return state


def load(layers, source) -> None:
    """Replace the parameters of `layers` with those in `source` (an .npz path
    or a mapping); every parameter must be present with its exact shape."""
    if isinstance(source, (str, os.PathLike)):
        with np.load(source) as f:
            source = {k: f[k] for k in f.files}
    expected = {}
    for i, layer in enumerate(layers):
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            expected[f"{i}.weight"] = layer.weight_shape
            if layer._bias is not None:
                expected[f"{i}.bias"] = (layer.weight_shape[0],)
        elif isinstance(layer, nn.PReLU):
            expected[f"{i}.weight"] = layer.slope.shape
    missing = sorted(set(expected) - set(source))
    if missing:
        raise ValueError(f"weights lack {', '.join(missing)}")
    for name, shape in expected.items():
        if tuple(source[name].shape) != tuple(shape):
            raise ValueError(f"weight {name} has shape {source[name].shape}; expected {shape}")
    for i, layer in enumerate(layers):
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            layer._weight = np.ascontiguousarray(source[f"{i}.weight"], np.float32)
            if layer._bias is not None:
                layer._bias = np.ascontiguousarray(source[f"{i}.bias"], np.float32)
        elif isinstance(layer, nn.PReLU):
            layer.slope = np.ascontiguousarray(source[f"{i}.weight"], np.float32)


MTCNN = os.path.join(os.path.dirname(__file__), "mtcnn.npz")


def trained(net: str, path=MTCNN) -> dict:
    """The parameters of MTCNN's `net` ("pnet", "rnet" or "onet") from mtcnn.npz,
    keyed as load() expects."""
    prefix = net + "."
    with np.load(path) as f:
        return {k[len(prefix):]: f[k] for k in f.files if k.startswith(prefix)}


def save(layers, path, **metadata) -> None:
    """Write the parameters of `layers` (and scalar metadata) to an .npz file."""
    np.savez_compressed(path, **state_dict(layers), **{k: np.asarray(v) for k, v in
                                                        metadata.items()})
