"""Convert facenet-pytorch's trained MTCNN weights into fastconv's mtcnn.npz.

    pip install --no-deps facenet-pytorch==2.6.0     # its pins would replace a CPU torch
    PYTHONPATH=src python scripts/convert_mtcnn.py

Reads facenet_pytorch/data/{pnet,rnet,onet}.pt (PyTorch state dicts; torch is
needed here only) and writes src/fastconv/models/mtcnn.npz with keys
"<net>.<layer index>.weight|bias" in the layer order of fastconv.models.pnet,
rnet and onet.  Two layout changes make them plain fastconv layers:

- the parallel output heads become one layer (P-Net's 1x1 convs 2 + 4 -> 6,
  R-Net's Linear 2 + 4 -> 6, O-Net's 2 + 4 + 10 -> 16), face logits first;
- facenet-pytorch flattens R-Net's and O-Net's last feature map in (W, H, C)
  order (a permute before view); the first FC weight's columns are reordered
  to fastconv's (C, H, W) Flatten, so to_fully_convolutional applies as is.

Licence and origin: src/fastconv/models/MTCNN_WEIGHTS.md.
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parents[1] / "src" / "fastconv" / "models" / "mtcnn.npz"

# fastconv layer index -> facenet-pytorch parameter name (None: no parameters)
PNET = {0: "conv1", 1: "prelu1", 3: "conv2", 4: "prelu2", 5: "conv3", 6: "prelu3",
        7: ("conv4_1", "conv4_2")}
RNET = {0: "conv1", 1: "prelu1", 3: "conv2", 4: "prelu2", 6: "conv3", 7: "prelu3",
        9: "dense4", 10: "prelu4", 11: ("dense5_1", "dense5_2")}
ONET = {0: "conv1", 1: "prelu1", 3: "conv2", 4: "prelu2", 6: "conv3", 7: "prelu3",
        9: "conv4", 10: "prelu4", 12: "dense5", 13: "prelu5",
        14: ("dense6_1", "dense6_2", "dense6_3")}
# The FC layer that reads the flattened map, and that map's (C, H, W).
FLATTENED = {"rnet": ("dense4", (64, 3, 3)), "onet": ("dense5", (128, 3, 3))}


def whc_to_chw(weight: np.ndarray, chw) -> np.ndarray:
    """Columns of an FC weight from (W, H, C) flatten order to (C, H, W)."""
    c, h, w = chw
    k = weight.shape[0]
    return np.ascontiguousarray(weight.reshape(k, w, h, c).transpose(0, 3, 2, 1).reshape(k, -1))


def convert(net: str, state: dict, layout: dict) -> dict:
    state = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in state.items()}
    if net in FLATTENED:
        name, chw = FLATTENED[net]
        state[f"{name}.weight"] = whc_to_chw(state[f"{name}.weight"], chw)
    out, used = {}, set()
    for index, names in layout.items():
        names = (names,) if isinstance(names, str) else names
        for part in ("weight", "bias"):
            keys = [f"{n}.{part}" for n in names]
            if keys[0] not in state:
                continue
            out[f"{net}.{index}.{part}"] = np.concatenate([state[k] for k in keys])
            used.update(keys)
    unused = sorted(set(state) - used)
    if unused:
        raise ValueError(f"{net}: parameters not converted: {unused}")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    import importlib.util
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None:
        parser.error("facenet-pytorch is not installed "
                     "(pip install --no-deps facenet-pytorch==2.6.0)")
    data = Path(spec.submodule_search_locations[0]) / "data"
    arrays, sources = {}, []
    for net, layout in (("pnet", PNET), ("rnet", RNET), ("onet", ONET)):
        path = data / f"{net}.pt"
        sources.append(f"{path.name} sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}")
        arrays.update(convert(net, torch.load(path, map_location="cpu"), layout))
    arrays["source"] = np.array("facenet-pytorch 2.6.0 (MIT): " + "; ".join(sources))
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes, {len(arrays) - 1} arrays)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
