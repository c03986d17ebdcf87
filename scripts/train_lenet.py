"""Train fastconv.models.lenet5 on scikit-learn's digits and write its weights.

    PYTHONPATH=src python scripts/train_lenet.py

Needs torch and scikit-learn (development only; fastconv itself needs
neither).  Trains a PyTorch copy of lenet5 (same layer order, so the
state_dict keys match), then evaluates the saved weights with fastconv on
the held-out split and writes:

    src/fastconv/models/lenet5.npz          weights + held-out accuracy
    src/fastconv/models/digits_heldout.npz  the held-out 8x8 digits and labels
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn as tnn

from fastconv.models import digits, lenet5, save_weights

MODELS = Path(__file__).resolve().parents[1] / "src" / "fastconv" / "models"


def torch_lenet() -> tnn.Sequential:
    return tnn.Sequential(
        tnn.Conv2d(1, 6, 5), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Flatten(),
        tnn.Linear(256, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10))


def shifted(x: torch.Tensor, gen: torch.Generator, max_shift: int) -> torch.Tensor:
    """Each image moved by a random whole-pixel offset (the 4-pixel margin is blank)."""
    out = torch.empty_like(x)
    shifts = torch.randint(-max_shift, max_shift + 1, (len(x), 2), generator=gen)
    for i, (dy, dx) in enumerate(shifts.tolist()):
        out[i] = torch.roll(x[i], (dy, dx), dims=(1, 2))
    return out


def off_centre(x: torch.Tensor, n: int, gen: torch.Generator, min_offset: int) -> torch.Tensor:
    """n windows that are not centred on a digit: 28x28 crops of a 3x3 block of
    random digits (some cells blank), offset from the centre cell by at least
    `min_offset` pixels along some axis.  The net learns to answer these with
    a uniform distribution, so a fully convolutional pass over a page of digits
    is confident only where a window sits on a digit."""
    cells = x[torch.randint(len(x), (n, 9), generator=gen), 0]          # (n, 9, 28, 28)
    cells = cells * (torch.rand(n, 9, 1, 1, generator=gen) > 0.2)
    blocks = cells.reshape(n, 3, 3, 28, 28).permute(0, 1, 3, 2, 4).reshape(n, 84, 84)
    out = torch.empty(n, 1, 28, 28)
    for i in range(n):
        while True:
            dy, dx = torch.randint(-14, 15, (2,), generator=gen).tolist()
            if max(abs(dy), abs(dx)) >= min_offset:
                break
        out[i, 0] = blocks[i, 28 + dy:56 + dy, 28 + dx:56 + dx]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shift", type=int, default=1, help="random shift augmentation (pixels)")
    ap.add_argument("--min-offset", type=int, default=5,
                    help="off-centre windows (trained towards a uniform answer) are at least "
                         "this far from a digit's centre")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(args.seed)
    x_train, y_train = (torch.from_numpy(a) for a in digits.load("train"))
    x_test, y_test = digits.load("test")

    model = torch_lenet()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            loss = tnn.functional.cross_entropy(
                model(shifted(x_train[idx], gen, args.shift)), y_train[idx])
            uniform = torch.full((len(idx), 10), 0.1)
            loss = loss + tnn.functional.cross_entropy(
                model(off_centre(x_train, len(idx), gen, args.min_offset)), uniform)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        if epoch % 10 == 9 or epoch == args.epochs - 1:
            model.eval()
            with torch.no_grad():
                acc = (model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
            print(f"epoch {epoch + 1}: loss {loss.item():.4f}, held-out accuracy {acc:.4f}")

    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    net = lenet5(weights=state)
    correct = int((net(x_test).argmax(1) == y_test).sum())
    print(f"fastconv on the held-out set: {correct}/{len(y_test)} = {correct / len(y_test):.4f}")
    save_weights(net.layers, MODELS / "lenet5.npz", heldout_correct=correct,
                 heldout_total=len(y_test))
    images, labels = digits.load_raw("test")
    np.savez_compressed(digits.HELDOUT_FILE, images=images, labels=labels.astype(np.uint8))
    print(f"wrote {MODELS / 'lenet5.npz'} and {digits.HELDOUT_FILE}")


if __name__ == "__main__":
    main()
