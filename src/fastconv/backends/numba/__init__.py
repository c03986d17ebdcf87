"""The Numba backend: the same operations as the C backend, written in Numba.

gemm.py     packed, blocked GEMM (BLIS structure) with fused bias/ReLU, on a
            register-blocked micro-kernel (an @intrinsic emitting LLVM IR)
conv.py     im2col fused into the GEMM's packing, and direct convolution
pool.py     max and average pooling, vectorised along output rows
_runtime.py compile options, operand views, threads and launch
"""
from .conv import conv2d  # noqa: F401
from .gemm import gemm  # noqa: F401
from .pool import pool2d  # noqa: F401
