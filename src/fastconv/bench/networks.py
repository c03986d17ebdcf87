"""Whole-network entries: LeNet-5 over a large image, once fully convolutionally
and once as a sliding window of 28x28 runs over the same positions.

The window positions are 4 px apart, LeNet's total downsampling, so output
pixel (i, j) of the fully convolutional network is the window at (4i, 4j).
Both forms return (positions down, positions across, 10 classes).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

STRIDE = 4
CELL = 28


@dataclass(frozen=True)
class SlidingWindow:
    suite: str
    name: str
    size: int              # the image is size x size, one channel
    kind = "network"

    @property
    def id(self) -> str:
        return f"{self.suite}/{self.name}"

    @property
    def positions(self) -> int:
        return (self.size - CELL) // STRIDE + 1

    def _models(self):
        from .. import nn
        from ..models import lenet5   # ImportError when this build has no model zoo
        model = lenet5()
        return model, nn.to_fully_convolutional(model, model.input_shape)

    def flops(self, batch: int = 1) -> int:
        """The sliding window's: every window runs the whole network."""
        model, _ = self._models()
        return self.positions ** 2 * model.flops(model.input_shape)

    def fcn_flops(self) -> int:
        _, fcn = self._models()
        return fcn.flops((1, self.size, self.size))

    def min_bytes(self, batch: int = 1, itemsize: int = 4) -> int:
        return itemsize * (self.size ** 2 + self.positions ** 2 * 10)

    def describe(self) -> str:
        return (f"LeNet-5 on {self.size}x{self.size}, {self.positions}x{self.positions} "
                f"windows at stride {STRIDE}")

    def reduced(self) -> "SlidingWindow":
        return replace(self, name="56x56", size=56)

    def implementations(self, backend: str, image):
        """{form: (callable, flops)} for the fully convolutional and sliding-window forms."""
        from .. import config
        model, fcn = self._models()
        win = np.lib.stride_tricks.sliding_window_view(image[0, 0], (CELL, CELL))
        win = win[::STRIDE, ::STRIDE]
        batch = np.ascontiguousarray(win.reshape(-1, 1, CELL, CELL))
        n = self.positions

        def fully_convolutional():
            with config(backend=backend):
                return fcn(image)[0].transpose(1, 2, 0)

        def sliding_window():
            with config(backend=backend):
                return model(batch).reshape(n, n, -1)
        return {"fully-convolutional": (fully_convolutional, self.fcn_flops()),
                "sliding-window": (sliding_window, self.flops())}


def available() -> bool:
    """Whether this build has the model zoo these entries run."""
    try:
        from .. import models  # noqa: F401
    except ImportError:
        return False
    return True


def image(entry: SlidingWindow, seed: int = 0):
    return np.random.default_rng(seed).random((1, 1, entry.size, entry.size), dtype=np.float32)
