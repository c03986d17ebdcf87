"""The argument structs handed to the C core: the Python side fills every
field of the header's struct by name, with values taken from the arrays as
NumPy lays them out."""
import numpy as np
import pytest

from fastconv import _args
from fastconv.backends import c
from fastconv.backends.c import ffi, lib


def header_fields(struct):
    return [name for name, _ in ffi.typeof(struct).fields]


def test_gemm_args_fill_every_field():
    a, b = np.ones((3, 4), np.float32), np.ones((4, 5), np.float32)
    out = np.empty((5, 3), np.float32).T  # column-major C
    args = c.gemm_args(a, b, out, None, lib.FC_BIAS_NONE, relu=True)
    assert sorted(args) == sorted(header_fields("fc_gemm_args"))
    g = ffi.new("fc_gemm_args *", args)
    assert (g.m, g.n, g.k) == (3, 5, 4)
    assert (g.rsa, g.csa, g.rsb, g.csb) == (4, 1, 5, 1)
    assert (g.rsc, g.csc) == (1, 3)
    assert (g.relu, g.accumulate, g.bias_mode) == (1, 0, lib.FC_BIAS_NONE)
    assert int(ffi.cast("uintptr_t", g.a)) == a.ctypes.data


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_conv_args_fill_every_field(layout):
    n, ch, h, w, k = 2, 3, 9, 11, 4
    shape = (n, ch, h, w) if layout == "NCHW" else (n, h, w, ch)
    x = np.zeros(shape, np.float64)
    weight = np.zeros((k, ch, 3, 2), np.float64)
    x, weight, bias, p = _args.conv2d_args(x, weight, np.zeros(k), (2, 1), ((1, 0), (0, 1)),
                                           (1, 2), 1, layout)
    out = np.empty(p.out_shape, x.dtype)
    ws = np.empty(64, np.uint8)
    args = c.conv_args(x, weight, bias, p, out, ws, relu=False)
    assert sorted(args) == sorted(header_fields("fc_conv_args"))
    a = ffi.new("fc_conv_args *", args)
    assert (a.n, a.c, a.h, a.w, a.k, a.kh, a.kw) == (n, ch, h, w, k, 3, 2)
    assert (a.stride_h, a.stride_w, a.pad_top, a.pad_left, a.dil_h, a.dil_w) == (2, 1, 1, 0, 1, 2)
    # Output size from first principles: (padded - dilated kernel) // stride + 1.
    assert (a.oh, a.ow) == ((h + 1 - 3) // 2 + 1, (w + 1 - 3) // 1 + 1)
    # x's element strides in logical N, C, H, W order, whatever the layout.
    item = x.itemsize
    axes = (0, 1, 2, 3) if layout == "NCHW" else (0, 3, 1, 2)
    assert (a.xs_n, a.xs_c, a.xs_h, a.xs_w) == tuple(x.strides[i] // item for i in axes)
    assert a.layout == (lib.FC_NCHW if layout == "NCHW" else lib.FC_NHWC)
    assert (a.groups, a.relu, a.ws_bytes) == (1, 0, 64)
    assert int(ffi.cast("uintptr_t", a.y)) == out.ctypes.data


def test_pool_args_fill_every_field():
    x = np.zeros((2, 3, 9, 11), np.float32)[:, :, ::-1]  # negative row stride
    x, p = _args.pool2d_args("max_pool2d", x, (3, 2), (2, 1), ((1, 0), (0, 1)), (1, 2), True,
                             "max")
    out = np.empty(p.out_shape, x.dtype)
    args = c.pool_args(x, p, out)
    assert sorted(args) == sorted(header_fields("fc_pool_args"))
    a = ffi.new("fc_pool_args *", args)
    assert (a.n, a.c, a.h, a.w, a.kh, a.kw) == (2, 3, 9, 11, 3, 2)
    assert (a.stride_h, a.stride_w, a.dil_h, a.dil_w) == (2, 1, 1, 2)
    assert (a.pad_top, a.pad_bottom, a.pad_left, a.pad_right) == (1, 0, 0, 1)
    assert (a.oh, a.ow) == p.out_shape[2:] and a.mode == lib.FC_POOL_MAX
    item = x.itemsize
    assert (a.xs_n, a.xs_c, a.xs_h, a.xs_w) == tuple(s // item for s in x.strides)
    assert int(ffi.cast("uintptr_t", a.y)) == out.ctypes.data
