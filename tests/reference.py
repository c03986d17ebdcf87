"""An independent float64 reference for conv2d and the pooling layers.

Written from PyTorch's documented rules (torch.nn.Conv2d, torch.nn.MaxPool2d,
torch.nn.AvgPool2d) and sharing no code with fastconv: its own padding forms,
its own output-size arithmetic, an explicitly zero-padded input and one einsum
per kernel tap.  A bug in fastconv's argument layer therefore moves fastconv
and not this reference.  tests/test_reference.py checks it against
torch.nn.functional itself and against plain loops.
"""
import math
import numbers

import numpy as np


def _int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _two(v):
    """An int, or a pair of ints, as (height, width)."""
    if _int(v):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


def conv_padding(padding, kernel, dilation):
    """(top, bottom, left, right) for fastconv's padding forms.

    "same": total d*(k-1) per axis, the odd pixel at the bottom/right, as
    torch.nn.functional.conv2d(padding="same") does.  An int pads every side;
    a pair (ph, pw) pads top and bottom by ph, left and right by pw;
    ((top, bottom), (left, right)) is explicit (each part an int or a pair).
    """
    (kh, kw), (dh, dw) = kernel, dilation
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        assert padding == "same", padding
        th, tw = dh * (kh - 1), dw * (kw - 1)
        return th // 2, th - th // 2, tw // 2, tw - tw // 2
    if _int(padding):
        p = int(padding)
        return p, p, p, p
    rows, cols = padding
    if _int(rows) and _int(cols):
        return int(rows), int(rows), int(cols), int(cols)
    (top, bottom), (left, right) = _two(rows), _two(cols)
    return top, bottom, left, right


def conv_out_size(size, pad_before, pad_after, k, dilation, stride):
    """floor((size + padding - dilation*(k-1) - 1) / stride) + 1, as torch.nn.Conv2d
    documents; None when the dilated kernel does not fit the padded input."""
    span = size + pad_before + pad_after - dilation * (k - 1) - 1
    return None if span < 0 else span // stride + 1


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           layout="NCHW", relu=False):
    """float64 conv2d; raises ValueError where torch would refuse the problem."""
    x = np.asarray(x, np.float64)
    weight = np.asarray(weight, np.float64)
    if layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    n, c, h, w = x.shape
    k, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = _two(stride), _two(dilation)
    if isinstance(padding, str) and padding == "same" and (sh, sw) != (1, 1):
        raise ValueError("padding='same' needs stride 1")
    if c % groups or k % groups or cg != c // groups:
        raise ValueError("channels do not match groups")
    top, bottom, left, right = conv_padding(padding, (kh, kw), (dh, dw))
    oh = conv_out_size(h, top, bottom, kh, dh, sh)
    ow = conv_out_size(w, left, right, kw, dw, sw)
    if oh is None or ow is None:
        raise ValueError("kernel larger than the padded input")
    xp = np.zeros((n, c, h + top + bottom, w + left + right))
    xp[:, :, top:top + h, left:left + w] = x
    kg = k // groups
    out = np.zeros((n, groups, kg, oh, ow))
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dh, j * dw
            tap = xp[:, :, r0:r0 + sh * (oh - 1) + 1:sh, c0:c0 + sw * (ow - 1) + 1:sw]
            tap = tap.reshape(n, groups, cg, oh, ow)
            out += np.einsum("ngchw,gkc->ngkhw", tap, weight[:, :, i, j].reshape(groups, kg, cg))
    out = out.reshape(n, k, oh, ow)
    if bias is not None:
        out += np.asarray(bias, np.float64)[None, :, None, None]
    if relu:
        out = np.maximum(out, 0.0)
    return out.transpose(0, 2, 3, 1) if layout == "NHWC" else out


def conv2d_loops(x, weight, bias, stride, pads, dilation, groups):
    """The same conv as seven plain loops over unpadded NCHW input (tiny sizes
    only): an out-of-range tap reads zero.  pads is (top, bottom, left, right)."""
    n, c, h, w = x.shape
    k, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = stride, dilation
    top, bottom, left, right = pads
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (w + left + right - dw * (kw - 1) - 1) // sw + 1
    kg = k // groups
    out = np.zeros((n, k, oh, ow))
    for b in range(n):
        for o in range(k):
            g = o // kg
            for y in range(oh):
                for z in range(ow):
                    acc = 0.0 if bias is None else float(bias[o])
                    for ci in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                r, s = y * sh - top + i * dh, z * sw - left + j * dw
                                if 0 <= r < h and 0 <= s < w:
                                    acc += float(x[b, g * cg + ci, r, s]) * float(weight[o, ci, i, j])
                    out[b, o, y, z] = acc
    return out


def torch_conv(torch, x, weight, bias, stride, padding, dilation, groups):
    """torch.nn.functional.conv2d; explicit per-side padding by F.pad first
    (F.conv2d takes only symmetric int/pair padding, "same" and "valid").
    NCHW float64 in and out."""
    F = torch.nn.functional
    xt, wt = (torch.from_numpy(np.ascontiguousarray(a, np.float64)) for a in (x, weight))
    bt = None if bias is None else torch.from_numpy(np.ascontiguousarray(bias, np.float64))
    stride, dilation = _two(stride), _two(dilation)
    if isinstance(padding, str) or _int(padding) or all(_int(p) for p in padding):
        pad = padding if isinstance(padding, str) else _two(padding)
        return F.conv2d(xt, wt, bt, stride, pad, dilation, groups).numpy()
    t, b, l, r = conv_padding(padding, weight.shape[2:], dilation)
    return F.conv2d(F.pad(xt, (l, r, t, b)), wt, bt, stride, 0, dilation, groups).numpy()


def pool_out_size(size, k, stride, pad, ceil_mode):
    """torch.nn.MaxPool2d's output size: floor (or ceil) of
    (size + 2*pad - k) / stride, plus one; with ceil_mode a last window that
    would start past the input and its left padding is dropped."""
    num = size + 2 * pad - k
    out = (math.ceil(num / stride) if ceil_mode else num // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def pool2d(x, kernel, stride=None, padding=0, ceil_mode=False, op="max"):
    """Max or average pooling of NCHW x by plain loops over output pixels.

    Max ignores padding (it counts as -inf).  Average sums the window's input
    pixels and divides by the window's extent clipped to the padded input
    (zero padding counts, as torch's count_include_pad=True)."""
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    (kh, kw) = _two(kernel)
    (sh, sw) = (kh, kw) if stride is None else _two(stride)
    ph, pw = _two(padding)
    oh = pool_out_size(h, kh, sh, ph, ceil_mode)
    ow = pool_out_size(w, kw, sw, pw, ceil_mode)
    out = np.empty((n, c, oh, ow))
    for y in range(oh):
        for z in range(ow):
            r0, s0 = y * sh - ph, z * sw - pw
            r1, s1 = min(r0 + kh, h + ph), min(s0 + kw, w + pw)
            win = x[:, :, max(r0, 0):min(r1, h), max(s0, 0):min(s1, w)]
            if op == "max":
                out[:, :, y, z] = win.max(axis=(2, 3))
            else:
                out[:, :, y, z] = win.sum(axis=(2, 3)) / ((r1 - r0) * (s1 - s0))
    return out
