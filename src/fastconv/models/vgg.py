"""VGG-16 (configuration D), for lowering and parameter-count demonstrations."""
from __future__ import annotations

from .. import nn
from . import _weights

# Output channels of each 3x3 conv; "M" is a 2x2 max-pool.
_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
           512, 512, 512, "M")


def vgg16(weights=None, seed: int = 0, num_classes: int = 1000) -> nn.Sequential:
    """VGG-16 on 3x224x224: thirteen 3x3 convs (padding 1) with ReLU and five
    max-pools down to 512x7x7, then fc6 25088->4096, fc7 4096->4096 and
    fc8 4096->num_classes (dropout omitted: inference only), and softmax.
    138,357,544 parameters, 123,642,856 (89%) of them in the FC layers.

    weights=None gives deterministic seeded float32 weights (He-scaled
    normal), each layer's made only when the layer first runs (fc6 alone is
    411 MB); a path loads an .npz.  No trained weights ship.
    """
    layers, c = [], 3
    for v in _CONFIG:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
            continue
        i = len(layers)
        layers += [nn.Conv2d(_weights.seeded((v, c, 3, 3), c * 9, seed, i),
                             _weights.seeded_bias(v, seed, i), padding=1), nn.ReLU()]
        c = v
    layers.append(nn.Flatten())
    for fan_in, fan_out in ((512 * 7 * 7, 4096), (4096, 4096), (4096, num_classes)):
        i = len(layers)
        layers += [nn.Linear(_weights.seeded((fan_out, fan_in), fan_in, seed, i),
                             _weights.seeded_bias(fan_out, seed, i)), nn.ReLU()]
    layers[-1] = nn.Softmax()
    if weights is not None:
        _weights.load(layers, weights)
    return nn.Sequential(*layers, input_shape=(3, 224, 224))
