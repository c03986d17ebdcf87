"""Model zoo: LeNet-5 (trained on digits), VGG-16 and MTCNN (P-Net, R-Net, O-Net, trained).

Each model has `input_shape` (C, H, W); weights are deterministic seeded
arrays or loaded from an .npz whose keys are "<layer index>.weight" and
"<layer index>.bias"; loading is strict, as torch's load_state_dict
(load_weights(..., strict=False) loads what matches).  fastconv.models.digits provides the digits LeNet
was trained and evaluated on.
"""
from . import digits
from ._weights import load as load_weights, save as save_weights, state_dict
from .lenet import lenet5
from .pnet import PNet, pnet
from .mtcnn import MTCNN, mtcnn, onet, rnet
from .vgg import vgg16

__all__ = ["lenet5", "vgg16", "pnet", "PNet", "digits", "load_weights", "save_weights",
           "state_dict", "mtcnn", "MTCNN", "rnet", "onet"]
