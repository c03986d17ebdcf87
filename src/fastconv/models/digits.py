"""Handwritten digits for LeNet: scikit-learn's 8x8 digits as 28x28 images.

Each 8x8 image (values 0..16) is scaled to [0, 1], enlarged bilinearly to
20x20 and centred in a 28x28 frame with a 4-pixel margin, the layout of
MNIST.  The train/test split is a fixed seeded permutation, so the held-out
set is the same wherever it is rebuilt.  The held-out images also ship with
the package (HELDOUT_FILE, 8x8 bytes), so the demo and the accuracy check
run without scikit-learn.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

HELDOUT_FILE = Path(__file__).with_name("digits_heldout.npz")
SPLIT_SEED = 5
TEST_FRACTION = 0.2
SIZE, DIGIT = 28, 20


def _bilinear(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of 1-D linear interpolation (pixel centres aligned)."""
    src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m


def upsample(images8: np.ndarray) -> np.ndarray:
    """(N, 8, 8) digits with values 0..16 -> (N, 1, 28, 28) float32 in [0, 1]."""
    images8 = np.asarray(images8, np.float64).reshape(-1, 8, 8) / 16.0
    r = _bilinear(8, DIGIT)
    big = np.einsum("ij,njk,lk->nil", r, images8, r)
    m = (SIZE - DIGIT) // 2
    out = np.zeros((len(images8), 1, SIZE, SIZE), np.float32)
    out[:, 0, m:m + DIGIT, m:m + DIGIT] = big
    return out


def split_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices into scikit-learn's digits, fixed by SPLIT_SEED."""
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_test = int(round(n * TEST_FRACTION))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def load_raw(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 8, 8) uint8 0..16, labels (N,)) of one split; needs scikit-learn."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    from sklearn.datasets import load_digits
    d = load_digits()
    train, test = split_indices(len(d.target))
    idx = train if split == "train" else test
    return d.images[idx].astype(np.uint8), d.target[idx].astype(np.int64)


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 1, 28, 28) float32, labels (N,)); needs scikit-learn."""
    images, labels = load_raw(split)
    return upsample(images), labels


def heldout() -> tuple[np.ndarray, np.ndarray]:
    """The held-out split, as shipped with the package (no scikit-learn needed)."""
    with np.load(HELDOUT_FILE) as f:
        return upsample(f["images"]), f["labels"].astype(np.int64)
