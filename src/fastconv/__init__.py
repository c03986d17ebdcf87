"""fastconv: handwritten CPU kernels for convolution and GEMM.

A fully connected layer and a convolution are one computation: fastconv
lowers both to the same GEMM and runs it on handwritten C or Numba kernels.
"""
from . import lower, models, nn
from .api import conv2d, linear, matmul
from .config import config, get_backend, get_num_threads, set_backend, set_num_threads, threads
from .config import get_winograd, set_winograd
from .convert import conv_matrix, conv_to_fc, fc_to_conv
from .packed import PackedWeight
from .pool import avg_pool2d, global_avg_pool2d, global_max_pool2d, max_pool2d

__all__ = ["conv2d", "linear", "matmul", "lower", "config", "set_backend", "get_backend",
           "set_num_threads", "get_num_threads", "fc_to_conv", "conv_to_fc", "conv_matrix",
           "nn", "models", "threads", "PackedWeight", "max_pool2d", "avg_pool2d",
           "global_avg_pool2d", "global_max_pool2d", "set_winograd", "get_winograd"]
__version__ = "0.1.0"

from . import _threadpoolctl  # noqa: E402 -- after __version__, which the controller reports

_threadpoolctl.install()


def __getattr__(name):
    # fastconv.onnx on first use: it needs the optional onnx package.
    if name == "onnx":
        import importlib
        return importlib.import_module(".onnx", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
