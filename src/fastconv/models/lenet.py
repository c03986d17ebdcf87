"""LeNet-5 for 28x28 digits."""
from __future__ import annotations

from pathlib import Path

from .. import nn
from . import _weights

TRAINED = Path(__file__).with_name("lenet5.npz")


def lenet5(weights="trained", seed: int = 0) -> nn.Sequential:
    """LeNet-5 on a 1x28x28 image (no padding anywhere, so its fully
    convolutional form computes exactly this network at every window position):

        conv 5x5 1->6, ReLU, max-pool 2   -> 6x12x12
        conv 5x5 6->16, ReLU, max-pool 2  -> 16x4x4
        flatten, FC 256->120, ReLU, FC 120->84, ReLU, FC 84->10, softmax

    weights="trained" loads the shipped weights, trained by
    scripts/train_lenet.py on scikit-learn's digits (8x8, enlarged to 28x28;
    see fastconv.models.digits): 98.89% accuracy on the 359 held-out digits
    (355 of 359; tests/test_models.py checks it).  Training also showed it
    windows that are not centred on a digit, with a uniform target, so on a
    page of digits its fully convolutional form is confident only where a
    window sits on one.

    weights=None gives seeded random weights (`seed`); a path or a mapping
    loads weights with the same parameter names ("0.weight", "0.bias", ...).
    """
    layers = [
        nn.Conv2d(_weights.seeded((6, 1, 5, 5), 25, seed, 0), _weights.seeded_bias(6, seed, 0)),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(_weights.seeded((16, 6, 5, 5), 150, seed, 3),
                  _weights.seeded_bias(16, seed, 3)),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(_weights.seeded((120, 256), 256, seed, 7), _weights.seeded_bias(120, seed, 7)),
        nn.ReLU(),
        nn.Linear(_weights.seeded((84, 120), 120, seed, 9), _weights.seeded_bias(84, seed, 9)),
        nn.ReLU(),
        nn.Linear(_weights.seeded((10, 84), 84, seed, 11, scale=1.0),
                  _weights.seeded_bias(10, seed, 11)),
        nn.Softmax(),
    ]
    if weights is not None:
        _weights.load(layers, TRAINED if weights == "trained" else weights)
    return nn.Sequential(*layers, input_shape=(1, 28, 28))
