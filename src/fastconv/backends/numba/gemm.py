"""Packed, blocked GEMM (the BLIS structure) on the micro-kernel in ukernel.py.

C is split into blocks (rows x columns) that each pack their own panels, so
a call is a single parallel region (no barriers between packing and
compute); each thread takes a contiguous run of blocks.  Per block:

    for pc in k by KC:
      pack the block's columns of B[pc] into NR-wide panels (KC x NCB, L2)
      for each MR-row panel of the block:
        pack A[rows, pc] into one MR-tall panel (MR x KC, L1)
        for each B micro-panel:
          micro-kernel: C tile (=|+=) A panel x B panel
          on the last KC block: bias and ReLU in registers before the store

Panels are zero-padded, so the micro-kernel always computes a whole tile;
tiles that stick out of C go to a small buffer and are copied in.
"""
import numba
import numba.extending
import numba.np.numpy_support
import numpy as np

from . import _runtime
from .ukernel import microkernel, tile, tile_of

# (KC, NCB_PANELS): depth of a packed block, and most B micro-panels per
# block of C, so that the packed KC x NCB block of B stays in L2 (512 KiB
# fp32, 384 KiB fp64) while the MR x KC panel of A stays in L1.
_BLOCKING = {4: (256, 16), 8: (192, 16)}


def blocking(itemsize):
    return _BLOCKING[itemsize]


def blocking_of(arr):
    return blocking(arr.dtype.itemsize)


def zero_of(arr):
    return arr.dtype.type(0)


@numba.extending.overload(zero_of)
def _zero_of(arr):
    zero = numba.np.numpy_support.as_dtype(arr.dtype).type(0)
    return lambda arr: zero


@numba.extending.overload(blocking_of)
def _blocking_of(arr):
    b = blocking(arr.dtype.bitwidth // 8)
    return lambda arr: b


# Packing.  A panel is `width` (MR or NR) entries of the panel's short
# dimension ("pixels": rows of A, columns of B) by kc entries of the depth,
# stored as dst[at + p*width + t]; entries past the operand's edge are zero.
# An operand is either a strided matrix or, for a convolution, the implicit
# patch matrix of an image (im2col fused into packing), described by
# geom = (ow, r0, sh, sw, dh, dw, pt, pl, kh, kw, h, w, sxc, sxh, sxw):
# pixel t is output pixel (r0 + t // ow, t % ow), depth q is tap (c, i, j) of
# the weights' (C/groups, kh, kw) order; geom[0] == 0 means a plain matrix.
NO_PATCHES = (0,) * 15


@numba.njit(**_runtime.JIT)
def _pack_matrix(src, off, s_pix, s_q, npix, pix0, q0, kc, width, dst, at):
    valid = min(width, npix - pix0)
    if s_pix == 1:
        for p in range(kc):
            row = off + (q0 + p) * s_q + pix0
            src_row = src[row:row + valid]
            dst_row = dst[at + p * width:at + p * width + valid]
            for t in range(valid):
                dst_row[t] = src_row[t]
    elif abs(s_q) < abs(s_pix):  # walk the source along its smaller stride
        for t in range(valid):
            col = off + (pix0 + t) * s_pix + q0 * s_q
            for p in range(kc):
                dst[at + p * width + t] = src[col + p * s_q]
    else:
        for p in range(kc):
            row = off + (q0 + p) * s_q + pix0 * s_pix
            for t in range(valid):
                dst[at + p * width + t] = src[row + t * s_pix]
    for p in range(kc):
        for t in range(valid, width):
            dst[at + p * width + t] = 0


@numba.njit(**_runtime.JIT)
def _pack_patches(x, off, geom, npix, pix0, q0, kc, width, dst, at):
    ow, r0, sh, sw, dh, dw, pt, pl, kh, kw, h, w, sxc, sxh, sxw = geom
    valid = min(width, npix - pix0)
    for p in range(kc):
        q = q0 + p
        c = q // (kh * kw)
        i = (q // kw) % kh
        j = q % kw
        shift = j * dw - pl           # ix = ox * sw + shift
        ox_lo = -((shift) // sw)      # first ox with ix >= 0: ceil(-shift / sw)
        ox_hi = (w - 1 - shift) // sw + 1 if w - 1 - shift >= 0 else 0
        dst_row = dst[at + p * width:at + (p + 1) * width]
        dst_row[valid:] = 0
        # The panel's pixels, one output row (segment) at a time: within a
        # segment the taps read one input row, in bounds from ox_lo to ox_hi.
        t = 0
        oy = r0 + (pix0 // ow)
        ox = pix0 % ow
        while t < valid:
            seg = min(valid - t, ow - ox)
            iy = oy * sh - pt + i * dh
            lo = min(max(ox, ox_lo), ox + seg)
            hi = max(min(ox + seg, ox_hi), lo)
            if iy < 0 or iy >= h:
                lo = hi = ox + seg
            dst_row[t:t + lo - ox] = 0
            dst_row[t + hi - ox:t + seg] = 0
            if hi > lo:
                out = dst_row[t + lo - ox:t + hi - ox]
                start = off + c * sxc + iy * sxh + (lo * sw + shift) * sxw
                step = sw * sxw
                if step == 1:
                    src = x[start:start + hi - lo]
                    for u in range(hi - lo):
                        out[u] = src[u]
                else:
                    for u in range(hi - lo):
                        out[u] = x[start + u * step]
            t += seg
            ox = 0
            oy += 1


@numba.njit(**_runtime.JIT)
def _pack(src, off, s_pix, s_q, geom, npix, pix0, q0, kc, width, dst, at):
    if geom[0] > 0:
        _pack_patches(src, off, geom, npix, pix0, q0, kc, width, dst, at)
    else:
        _pack_matrix(src, off, s_pix, s_q, npix, pix0, q0, kc, width, dst, at)


@numba.njit(**_runtime.JIT)
def _finish_tile(c, at, ldc, rows, cols, i0, j0, bias, bias_axis, relu):
    """Bias (per row for bias_axis 0, per column for 1, none for -1), then
    ReLU written as x < 0 ? 0 : x so that NaN passes through."""
    zero = zero_of(c)
    bias_row = bias[j0:j0 + cols] if bias_axis == 1 else bias[:0]
    for i in range(rows):
        crow = c[at + i * ldc:at + i * ldc + cols]  # see _runtime: row views vectorise
        if bias_axis == 0:
            bi = bias[i0 + i]
            for j in range(cols):
                crow[j] += bi
        elif bias_axis == 1:
            for j in range(cols):
                crow[j] += bias_row[j]
        if relu:
            for j in range(cols):
                v = crow[j]
                crow[j] = zero if v < zero else v


@numba.njit(**_runtime.JIT)
def _block(a, a_off, sa0, sa1, a_geom, b, b_off, sb0, sb1, b_geom, c, c_off, ldc, m, n, k,
           ip0, ip1, jp0, jp1, bias, bias_axis, relu, mr_, nr_, ap, bp, spill):
    """C rows of A micro-panels ip0..ip1 by columns of B micro-panels jp0..jp1,
    packing into this thread's buffers ap, bp, spill.  mr_, nr_ are MR, NR
    as run-time values for the packing calls."""
    mr, nr = tile_of(c)
    kcmax = blocking_of(c)[0]
    for pc in range(0, k, kcmax):
        kc = min(kcmax, k - pc)
        accumulate = pc > 0
        last = pc + kc == k
        for jp in range(jp0, jp1):
            _pack(b, b_off, sb1, sb0, b_geom, n, jp * nr, pc, kc, nr_, bp, (jp - jp0) * nr * kc)
        for ip in range(ip0, ip1):
            i0 = ip * mr
            rows = min(mr, m - i0)
            # Two alternating slots for the A panel; also keeps the slot
            # offset a run-time value, as for B, so _pack compiles once.
            a_at = (ip - ip0) % 2 * mr * kc
            _pack(a, a_off, sa0, sa1, a_geom, m, i0, pc, kc, mr_, ap, a_at)
            for jp in range(jp0, jp1):
                j0 = jp * nr
                cols = min(nr, n - j0)
                at = c_off + i0 * ldc + j0
                # One micro-kernel call site: a tile sticking out of C is
                # computed into `spill` and copied in below.
                full = rows == mr and cols == nr
                epilogue = last and full
                microkernel(ap, a_at, bp, (jp - jp0) * nr * kc, kc, c if full else spill,
                            at if full else 0, ldc if full else nr, accumulate and full,
                            bias, i0 if bias_axis == 0 else j0,
                            bias_axis if epilogue else -1, relu and epilogue)
                if full:
                    continue
                for i in range(rows):
                    crow = c[at + i * ldc:at + i * ldc + cols]
                    srow = spill[i * nr:i * nr + cols]
                    for j in range(cols):
                        crow[j] = crow[j] + srow[j] if accumulate else srow[j]
                if last and (bias_axis >= 0 or relu):
                    _finish_tile(c, at, ldc, rows, cols, i0, j0, bias, bias_axis, relu)


@numba.njit(**_runtime.PARALLEL_JIT)
def _gemm(a, a_off, sa0, sa1, a_geom, b, b_off, sb0, sb1, b_geom, c, c_off, ldc, m, n, k,
          bias, bias_axis, relu, n_ib, n_jb, mr_, nr_, nthreads):
    mr, nr = tile_of(c)
    npa = (m + mr - 1) // mr
    npb = (n + nr - 1) // nr
    ib_panels = (npa + n_ib - 1) // n_ib
    jb_panels = (npb + n_jb - 1) // n_jb
    # One prange iteration per thread, each with its packing buffers and a
    # contiguous run of blocks (allocated once per call: a fresh large
    # allocation per block costs page faults comparable to a small GEMM).
    kc = min(k, blocking_of(c)[0])
    a_size, b_size = 2 * mr * kc, jb_panels * nr * kc
    per_thread = a_size + b_size + mr * nr
    buffers = np.empty(nthreads * per_thread, c.dtype)
    n_blocks = n_ib * n_jb
    for t in numba.prange(nthreads):
        mine = buffers[t * per_thread:(t + 1) * per_thread]
        ap = mine[:a_size]
        bp = mine[a_size:a_size + b_size]
        spill = mine[a_size + b_size:]
        for blk in range(t * n_blocks // nthreads, (t + 1) * n_blocks // nthreads):
            ib = blk % n_ib
            jb = blk // n_ib
            ip0 = min(ib * ib_panels, npa)
            jp0 = min(jb * jb_panels, npb)
            _block(a, a_off, sa0, sa1, a_geom, b, b_off, sb0, sb1, b_geom, c, c_off, ldc,
                   m, n, k, ip0, min(ip0 + ib_panels, npa), jp0, min(jp0 + jb_panels, npb),
                   bias, bias_axis, relu, mr_, nr_, ap, bp, spill)


def _split(m, n, itemsize, nthreads):
    """(row blocks, column blocks) of C, one task each: column blocks narrow
    enough for their packed B to stay in L2, then more blocks until every
    thread has the same number, splitting the dimension whose split repacks
    the smaller operand (more column blocks repack A, more row blocks B)."""
    mr, nr = tile(itemsize)
    npa, npb = -(-m // mr), -(-n // nr)
    n_jb, n_ib = -(-npb // blocking(itemsize)[1]), 1
    while (n_ib * n_jb) % nthreads and (n_ib < npa or n_jb < npb):
        if (m <= n and n_jb < npb) or n_ib >= npa:
            n_jb += 1
        else:
            n_ib += 1
    return n_ib, n_jb


def matrix(arr):
    """A 2-D array as a GEMM operand: (span, offset, stride0, stride1, geom)."""
    span, off, (s0, s1) = _runtime.flat(arr)
    return span, off, s0, s1, NO_PATCHES


def run(a, b, m, n, k, out, bias=None, bias_axis=1, relu=False):
    """out[:] = A @ B (+ bias) (then ReLU) for operands made by matrix() or
    by the convolution's patch operand; out is (m, n) with any strides."""
    if m == 0 or n == 0:
        return
    if k == 0:
        out[...] = 0
        if bias is not None:
            out += bias[:, None] if bias_axis == 0 else bias
        if relu:
            out[out < 0] = 0
        return
    nthreads = _runtime.use_threads()
    item = out.itemsize
    direct = out.flags.writeable and out.flags.aligned and out.strides[1] == item and \
        (m == 1 or (out.strides[0] % item == 0 and out.strides[0] >= n * item))
    target = out if direct else np.empty((m, n), out.dtype)
    c, c_off, (ldc, _) = _runtime.flat(target)
    bias_axis = -1 if bias is None else int(bias_axis)
    _runtime.launch(_gemm, *a, *b, c, c_off, ldc, m, n, k, _runtime.vector(bias, out.dtype),
                    bias_axis, bool(relu), *_split(m, n, item, nthreads), *tile(item), nthreads)
    if target is not out:
        out[...] = target


def gemm(a, b, out, bias=None, bias_axis=1, relu=False):
    """out[:] = a @ b (+ bias along bias_axis) (then ReLU); see fastconv.backends."""
    run(matrix(a), matrix(b), a.shape[0], b.shape[1], a.shape[1], out, bias, bias_axis, relu)
