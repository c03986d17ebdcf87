"""MTCNN's P-Net: a face proposal network that is fully convolutional from the start."""
from __future__ import annotations

import numpy as np

from .. import nn
from . import _weights


class PNet(nn.Module):
    """P-Net on a 3x12x12 window; on a larger image, one pass gives a map of
    face probabilities and box offsets, one per 12x12 window at stride 2.

        conv 3x3 3->10, PReLU, max-pool 2 (ceil) -> 10x5x5
        conv 3x3 10->16, PReLU                   -> 16x3x3
        conv 3x3 16->32, PReLU                   -> 32x1x1
        conv 1x1 32->2 (face / not face, softmax) and conv 1x1 32->4 (box)

    The two 1x1 heads run as one 32->6 conv (one GEMM); forward returns
    (probabilities (N, 2, OH, OW), box offsets (N, 4, OH, OW)).
    """

    input_shape = (3, 12, 12)

    def __init__(self, layers):
        self.layers = list(layers)
        self._softmax = nn.Softmax()

    def forward(self, x):
        x = nn.run_chain(self.layers, x)
        return self._softmax(x[:, :2]), x[:, 2:]

    def output_shape(self, shape):
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return (2,) + shape[1:], (4,) + shape[1:]

    def params(self):
        return sum(layer.params() for layer in self.layers)

    def flops(self, shape):
        return nn.Sequential(*self.layers).flops(shape)


def conv(k: int, c: int, size: int, seed: int, index: int) -> nn.Conv2d:
    """A size x size Conv2d c -> k with seeded weights (layer `index` of a model)."""
    return nn.Conv2d(_weights.seeded((k, c, size, size), c * size * size, seed, index),
                     _weights.seeded_bias(k, seed, index))


def prelu(c: int) -> nn.PReLU:
    return nn.PReLU(np.full(c, 0.25, np.float32))


def pnet(weights=None, seed: int = 0) -> PNet:
    """P-Net with deterministic seeded weights (weights=None), the trained
    MTCNN weights that ship in mtcnn.npz (weights="trained"; see
    fastconv.models.mtcnn) or from an .npz or mapping (keys "0.weight",
    "0.bias", "1.weight" (PReLU slope), ...)."""
    layers = [conv(10, 3, 3, seed, 0), prelu(10), nn.MaxPool2d(2, ceil_mode=True),
              conv(16, 10, 3, seed, 3), prelu(16),
              conv(32, 16, 3, seed, 5), prelu(32),
              conv(6, 32, 1, seed, 7)]
    if isinstance(weights, str) and weights == "trained":
        weights = _weights.trained("pnet")
    if weights is not None:
        _weights.load(layers, weights)
    return PNet(layers)
