"""Weights for the model zoo: deterministic seeded initialisation and .npz files.

Parameters are named as in a PyTorch nn.Sequential's state_dict: "<layer
index>.weight" and "<layer index>.bias" (a PReLU's slope is its "weight"), so a
torch model with the same layer order saves straight into these files.
"""
from __future__ import annotations

import os
import zipfile

import numpy as np

from .. import _args, nn


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


def _read(source) -> dict:
    """{name: ndarray} from an .npz path or a mapping of array-likes."""
    if isinstance(source, (str, os.PathLike)):
        try:
            f = np.load(source)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # not NumPy's
            raise ValueError(f"weights: cannot read {os.fspath(source)!r} as an .npz file: "
                             f"{e}") from None
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise ValueError(f"weights: {os.fspath(source)!r} holds one array, not an .npz "
                             "of named parameters")
        with f:
            return {k: f[k] for k in f.files}
    if not hasattr(source, "keys"):
        raise TypeError(f"weights must be an .npz path or a mapping of name -> array; "
                        f"got {type(source).__name__}")
    return {k: source[k] for k in source.keys()}


def _expected(layers) -> dict:
    """{name: (layer, attribute, shape)} of every parameter `layers` hold."""
    expected = {}
    for i, layer in enumerate(layers):
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            expected[f"{i}.weight"] = (layer, "_weight", layer.weight_shape)
            if layer._bias is not None:
                expected[f"{i}.bias"] = (layer, "_bias", (layer.weight_shape[0],))
        elif isinstance(layer, nn.PReLU):
            expected[f"{i}.weight"] = (layer, "slope", layer.slope.shape)
    return expected


def load(layers, source, strict: bool = True) -> tuple[list, list]:
    """Replace the parameters of `layers` with those in `source` (an .npz path
    or a mapping of name -> array).  As torch's load_state_dict: with strict
    (the default) a parameter missing from `source` or a name in it that no
    layer has is a ValueError listing them all; strict=False loads what
    matches and skips the rest.  A wrong shape is an error either way.
    Names without a "." are metadata (save's keywords) and not parameters.
    Returns (missing, unexpected) names.  Nothing is replaced unless all checks pass."""
    strict = _args.flag("strict", strict)
    found = {k: v for k, v in _read(source).items() if "." in str(k)}
    expected = _expected(layers)
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    state = {k: _args.float_array(f"weight {k}", found[k]) for k in expected if k in found}
    wrong = [f"{name} has shape {tuple(state[name].shape)}, expected {shape}"
             for name, (_, _, shape) in expected.items()
             if name in state and tuple(state[name].shape) != tuple(shape)]
    problems = [f"wrong shapes: {'; '.join(wrong)}"] if wrong else []
    if strict:
        problems += [f"missing: {', '.join(missing)}"] if missing else []
        problems += [f"unexpected: {', '.join(unexpected)}"] if unexpected else []
    if problems:
        hint = " (strict=False loads the matching ones)" if strict and not wrong else ""
        raise ValueError(f"weights do not fit the model: {'. '.join(problems)}{hint}")
    for name, (layer, attr, _) in expected.items():
        if name in state:
            setattr(layer, attr, np.ascontiguousarray(state[name], getattr(layer, attr).dtype))
    return missing, unexpected


MTCNN = os.path.join(os.path.dirname(__file__), "mtcnn.npz")


def trained(net: str, path=MTCNN) -> dict:
    """The parameters of MTCNN's `net` ("pnet", "rnet" or "onet") from mtcnn.npz,
    keyed as load() expects."""
    prefix = net + "."
    with np.load(path) as f:
        return {k[len(prefix):]: f[k] for k in f.files if k.startswith(prefix)}


def save(layers, path, **metadata) -> None:
    """Write the parameters of `layers` (and scalar metadata) to an .npz file."""
    dotted = [k for k in metadata if "." in k]
    if dotted:
        raise ValueError(f"metadata names must not contain '.' (those name parameters): "
                         f"{', '.join(dotted)}")
    np.savez_compressed(path, **state_dict(layers), **{k: np.asarray(v) for k, v in
                                                        metadata.items()})
