"""Packed, blocked GEMM (the BLIS structure) on a register-blocked micro-kernel.

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
tiles that stick out of C go to a small buffer and are copied in.  When a
block has only a few B panels (small n), packing A would cost more than it
saves, and the micro-kernel reads a row-major A in place instead.

The micro-kernel is a Numba @intrinsic that emits the LLVM IR directly: the
accumulators must live in vector registers for the whole k loop.  Plain Numba
code keeps a local accumulator array in memory (it is an NRT allocation LLVM
cannot promote), which costs a load and a store around every FMA; scalar
locals would need LLVM's SLP vectoriser to rebuild the vectors.  Here each
accumulator is an LLVM vector value carried around the k loop by a phi node,
so LLVM allocates it to a register.  Each k step is NV vector loads of B,
MR scalar loads of A splatted to vectors and MR*NV `llvm.fma` calls.  On
AVX-512 hosts `inspect_asm` shows the loop (LLVM unrolls it by 2) as
`vbroadcastss`/`vmovups` feeding `vfmadd231ps zmm` (fp32; `pd` for fp64),
MR * NV per k step, with no accumulator loads or stores inside the loop.

Tile shape per host ISA and dtype (NR = NV vectors of VW lanes):
  AVX-512: MR = 8, NV = 2 -> 16 accumulators (8 x 32 fp32, 8 x 16 fp64)
  AVX2 / AVX (16 registers): MR = 6, NV = 2 -> 12 accumulators
  otherwise (SSE): MR = 6, NV = 2 on 16-byte vectors
On AVX-512, MR = 8 because it divides the channel counts of CNN layers
(64, 128, ...) and a taller tile ran no faster (docs/TUNING.md).

Everything the compiled GEMM uses lives in this one file: Numba checks a
cached function against its own source file only, so a micro-kernel kept
in another module could be loaded stale from the cache after an edit.
"""
from typing import NamedTuple

import llvmlite.binding as llvm
import numba
import numba.np.numpy_support
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from . import _runtime

_features = llvm.get_host_cpu_features()
if _features.get("avx512f"):
    _VECTOR_BYTES, _MR, _CONV_MR = 64, 8, 14
elif _features.get("avx"):
    _VECTOR_BYTES, _MR, _CONV_MR = 32, 6, 6
else:
    _VECTOR_BYTES, _MR, _CONV_MR = 16, 6, 6
_NV = 2


def tile(itemsize: int) -> tuple[int, int]:
    """(MR, NR) of the micro-kernel for elements of `itemsize` bytes."""
    return _MR, _NV * (_VECTOR_BYTES // itemsize)


def conv_tile(itemsize: int) -> tuple[int, int]:
    """(MR, NR) of the direct convolution's tiles: on AVX-512 taller than the
    GEMM's (28 accumulators), since its A operand (the input) is read in
    place rather than packed, and each extra pixel saves weight traffic."""
    return _CONV_MR, _NV * (_VECTOR_BYTES // itemsize)


def tile_of(arr):
    """(MR, NR) for arr's dtype, as compile-time constants inside Numba code."""
    return tile(arr.dtype.itemsize)


def conv_tile_of(arr):
    return conv_tile(arr.dtype.itemsize)


@overload(tile_of)
def _tile_of(arr):
    mr, nr = tile(arr.dtype.bitwidth // 8)
    return lambda arr: (mr, nr)


@overload(conv_tile_of)
def _conv_tile_of(arr):
    mr, nr = conv_tile(arr.dtype.bitwidth // 8)
    return lambda arr: (mr, nr)


def _make_microkernel(tile_shape):
    @intrinsic
    def microkernel(typingctx, ap, a_off, a_rs, a_cs, a_split, a_jump, bp, b_off, b_rs, kc, c,
                    c_off, ldc, accumulate, bias, bias_off, bias_axis, relu):
        sig = types.void(ap, a_off, a_rs, a_cs, a_split, a_jump, bp, b_off, b_rs, kc, c, c_off,
                         ldc, accumulate, bias, bias_off, bias_axis, relu)
        return sig, lambda context, builder, sig, args: _microkernel_ir(
            context, builder, sig, args, tile_shape)
    return microkernel


def _microkernel_ir(context, builder, sig, args, tile_shape):
    """The MR x NR tile T = sum_p ap[a_off + a_row(i) + p*a_cs] * bp[b_off + p*b_rs + j],
    a_row(i) = i*a_rs (+ a_jump for i >= a_split): an MR-tall panel of A,
    packed when (a_rs, a_cs) = (1, MR), or two runs of rows read in place;
    times an NR-wide panel of B (packed: b_rs = NR).  Stored as
        c[c_off + i*ldc + j] = (c[...] if accumulate else 0) + T[i, j]
            (+ bias[bias_off + i] if bias_axis == 0, + bias[bias_off + j] if 1)
            (then x < 0 ? 0 : x if relu; NaN passes)
    ap, bp, c, bias: 1-D contiguous arrays of one float dtype; accumulate and
    relu booleans; the rest integers.  The caller guarantees every index is
    in range."""
    aty = sig.args[0]
    itemsize = aty.dtype.bitwidth // 8
    mr, nr = tile_shape(itemsize)
    vw = _VECTOR_BYTES // itemsize
    nv = nr // vw
    fty = context.get_data_type(aty.dtype)
    vty = ir.VectorType(fty, vw)
    intp = context.get_value_type(types.intp)

    def as_intp(i):
        return context.cast(builder, args[i], sig.args[i], types.intp)

    def data(i):
        return context.make_array(sig.args[i])(context, builder, args[i]).data

    a0 = builder.gep(data(0), [as_intp(1)])
    a_rs_, a_cs_, a_split, a_jump = as_intp(2), as_intp(3), as_intp(4), as_intp(5)
    a_row = [builder.add(builder.mul(a_rs_, ir.Constant(intp, i)), builder.select(
        builder.icmp_signed(">=", ir.Constant(intp, i), a_split), a_jump,
        ir.Constant(intp, 0))) for i in range(mr)]
    b0 = builder.gep(data(6), [as_intp(7)])
    b_rs_ = as_intp(8)
    c0 = builder.gep(data(10), [as_intp(11)])
    k, ldc_ = as_intp(9), as_intp(12)
    suffix = f"v{vw}f{itemsize * 8}"
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3),
                                         f"llvm.fma.{suffix}")
    zero = ir.Constant(vty, None)
    splat_mask = ir.Constant(ir.VectorType(ir.IntType(32), vw), None)

    def vload(base, index):
        ptr = builder.bitcast(builder.gep(base, [index]), vty.as_pointer())
        return builder.load(ptr, align=itemsize)

    # Prefetch the C tile for writing before the k loop, so that its
    # cache misses overlap the FMAs instead of stalling the final stores.
    i8p = ir.IntType(8).as_pointer()
    i32 = ir.IntType(32)
    prefetch = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0")
    for i in range(mr):
        c_i = builder.gep(c0, [builder.mul(ldc_, ir.Constant(intp, i))])
        for line in range(0, nr * itemsize, 64):
            ptr = builder.bitcast(builder.gep(c_i, [ir.Constant(intp, line // itemsize)]), i8p)
            builder.call(prefetch, [ptr, i32(1), i32(3), i32(1)])

    entry = builder.basic_block
    loop = builder.append_basic_block("uk.loop")
    done = builder.append_basic_block("uk.done")
    builder.cbranch(builder.icmp_signed(">", k, ir.Constant(intp, 0)), loop, done)

    builder.position_at_end(loop)
    p = builder.phi(intp)
    p.add_incoming(ir.Constant(intp, 0), entry)
    acc = [[builder.phi(vty) for _ in range(nv)] for _ in range(mr)]
    for row in acc:
        for phi in row:
            phi.add_incoming(zero, entry)
    a_p = builder.gep(a0, [builder.mul(p, a_cs_)])
    b_p = builder.gep(b0, [builder.mul(p, b_rs_)])
    bvec = [vload(b_p, ir.Constant(intp, v * vw)) for v in range(nv)]
    new = []
    for i in range(mr):
        a_i = builder.load(builder.gep(a_p, [a_row[i]]), align=itemsize)
        a_i = builder.insert_element(ir.Constant(vty, ir.Undefined), a_i,
                                     ir.Constant(ir.IntType(32), 0))
        a_i = builder.shuffle_vector(a_i, ir.Constant(vty, ir.Undefined), splat_mask)
        new.append([builder.call(fma, [a_i, bvec[v], acc[i][v]]) for v in range(nv)])
    p_next = builder.add(p, ir.Constant(intp, 1))
    p.add_incoming(p_next, loop)
    for i in range(mr):
        for v in range(nv):
            acc[i][v].add_incoming(new[i][v], loop)
    builder.cbranch(builder.icmp_signed("<", p_next, k), loop, done)

    builder.position_at_end(done)
    final = []
    for i in range(mr):
        row = []
        for v in range(nv):
            phi = builder.phi(vty)
            phi.add_incoming(zero, entry)
            phi.add_incoming(new[i][v], loop)
            row.append(phi)
        final.append(row)
    # The epilogue works on stack slots, which LLVM promotes back to
    # registers: the branches below are taken once per tile.
    slots = [[cgutils.alloca_once_value(builder, final[i][v]) for v in range(nv)]
             for i in range(mr)]
    ptrs = [[builder.bitcast(builder.gep(c0, [builder.add(
        builder.mul(ldc_, ir.Constant(intp, i)), ir.Constant(intp, v * vw))]), vty.as_pointer())
        for v in range(nv)] for i in range(mr)]

    def update(i, v, fn):
        builder.store(fn(builder.load(slots[i][v])), slots[i][v])

    with builder.if_then(context.cast(builder, args[13], sig.args[13], types.boolean)):
        for i in range(mr):
            for v in range(nv):
                old = builder.load(ptrs[i][v], align=itemsize)
                update(i, v, lambda x: builder.fadd(x, old))
    bias0 = builder.gep(data(14), [as_intp(15)])
    axis = as_intp(16)
    with builder.if_then(builder.icmp_signed("==", axis, ir.Constant(intp, 0))):
        for i in range(mr):
            b_i = builder.load(builder.gep(bias0, [ir.Constant(intp, i)]), align=itemsize)
            b_i = builder.insert_element(ir.Constant(vty, ir.Undefined), b_i,
                                         ir.Constant(ir.IntType(32), 0))
            b_i = builder.shuffle_vector(b_i, ir.Constant(vty, ir.Undefined), splat_mask)
            for v in range(nv):
                update(i, v, lambda x: builder.fadd(x, b_i))
    with builder.if_then(builder.icmp_signed("==", axis, ir.Constant(intp, 1))):
        for v in range(nv):
            b_v = vload(bias0, ir.Constant(intp, v * vw))
            for i in range(mr):
                update(i, v, lambda x: builder.fadd(x, b_v))
    with builder.if_then(context.cast(builder, args[17], sig.args[17], types.boolean)):
        for i in range(mr):
            for v in range(nv):
                # Ordered x < 0 is false for NaN, so NaN is kept.
                update(i, v, lambda x: builder.select(builder.fcmp_ordered("<", x, zero),
                                                      zero, x))
    for i in range(mr):
        for v in range(nv):
            builder.store(builder.load(slots[i][v]), ptrs[i][v], align=itemsize)
    return context.get_dummy_value()


microkernel = _make_microkernel(tile)
conv_microkernel = _make_microkernel(conv_tile)


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


@overload(zero_of)
def _zero_of(arr):
    zero = numba.np.numpy_support.as_dtype(arr.dtype).type(0)
    return lambda arr: zero


@overload(blocking_of)
def _blocking_of(arr):
    b = blocking(arr.dtype.bitwidth // 8)
    return lambda arr: b


# Packing.  A panel is `width` (MR or NR) entries of the panel's short
# dimension ("pixels": rows of A, columns of B) by kc entries of the depth,
# stored as dst[at + p*width + t]; entries past the operand's edge are zero.
# An operand is either a strided matrix or, for a convolution, the implicit
# patch matrix of an image (im2col fused into packing), described by Patches.
class Patches(NamedTuple):
    """The patch matrix of one image (and group) read in place: pixel t is
    output pixel (r0 + t // ow, t % ow), depth q is tap (c, i, j) of the
    weights' (C/groups, kh, kw) order.  ow == 0 (NO_PATCHES): the operand is
    a plain strided matrix.  All fields are ints, so Numba types it as one
    homogeneous tuple and compiles each kernel once per dtype."""
    ow: int        # output width (0: not a patch matrix)
    r0: int        # first output row
    sh: int        # stride
    sw: int
    dh: int        # dilation
    dw: int
    pad_top: int
    pad_left: int
    kh: int        # kernel
    kw: int
    h: int         # input height and width
    w: int
    xs_c: int      # the image's element strides along C, H, W
    xs_h: int
    xs_w: int


NO_PATCHES = Patches(*(0,) * len(Patches._fields))


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
def _pack_patches(x, off, g, npix, pix0, q0, kc, width, dst, at):
    """Pack from the patch matrix g (Patches) of the image at x[off]."""
    taps, sw, step = g.kh * g.kw, g.sw, g.sw * g.xs_w
    valid = min(width, npix - pix0)
    for p in range(kc):
        q = q0 + p
        c = q // taps
        i = (q // g.kw) % g.kh
        j = q % g.kw
        shift = j * g.dw - g.pad_left  # ix = ox * sw + shift
        ox_lo = -((shift) // sw)      # first ox with ix >= 0: ceil(-shift / sw)
        ox_hi = (g.w - 1 - shift) // sw + 1 if g.w - 1 - shift >= 0 else 0
        dst_row = dst[at + p * width:at + (p + 1) * width]
        dst_row[valid:] = 0
        # The panel's pixels, one output row (segment) at a time: within a
        # segment the taps read one input row, in bounds from ox_lo to ox_hi.
        t = 0
        oy = g.r0 + (pix0 // g.ow)
        ox = pix0 % g.ow
        while t < valid:
            seg = min(valid - t, g.ow - ox)
            iy = oy * g.sh - g.pad_top + i * g.dh
            lo = min(max(ox, ox_lo), ox + seg)
            hi = max(min(ox + seg, ox_hi), lo)
            if iy < 0 or iy >= g.h:
                lo = hi = ox + seg
            dst_row[t:t + lo - ox] = 0
            dst_row[t + hi - ox:t + seg] = 0
            if hi > lo:
                out = dst_row[t + lo - ox:t + hi - ox]
                start = off + c * g.xs_c + iy * g.xs_h + (lo * sw + shift) * g.xs_w
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
def _pack(src, off, s_pix, s_q, patches, npix, pix0, q0, kc, width, dst, at):
    if patches.ow > 0:
        _pack_patches(src, off, patches, npix, pix0, q0, kc, width, dst, at)
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
def _block(a, a_off, sa0, sa1, a_patches, b, b_off, sb0, sb1, b_patches, c, c_off, ldc, m, n, k,
           ip0, ip1, jp0, jp1, bias, bias_axis, relu, mr_, nr_, ap, bp, spill):
    """C rows of A micro-panels ip0..ip1 by columns of B micro-panels jp0..jp1,
    packing into this thread's buffers ap, bp, spill.  mr_, nr_ are MR, NR
    as run-time values for the packing calls."""
    mr, nr = tile_of(c)
    # Equal depth blocks of at most KC (k = 576 runs as 3 x 192, not 256 + 256 + 64).
    kcmax = blocking_of(c)[0]
    k_blocks = (k + kcmax - 1) // kcmax
    kstep = (k + k_blocks - 1) // k_blocks
    # With few B panels per A panel, packing A costs more than it saves:
    # the micro-kernel then reads a row-major A in place (MR row streams).
    in_place = a_patches.ow == 0 and sa1 == 1 and jp1 - jp0 <= 4
    for pc in range(0, k, kstep):
        kc = min(kstep, k - pc)
        accumulate = pc > 0
        last = pc + kc == k
        for jp in range(jp0, jp1):
            _pack(b, b_off, sb1, sb0, b_patches, n, jp * nr, pc, kc, nr_, bp, (jp - jp0) * nr * kc)
        for ip in range(ip0, ip1):
            i0 = ip * mr
            rows = min(mr, m - i0)
            if in_place and rows == mr:
                a_src, a_at, a_rs, a_cs = a, a_off + i0 * sa0 + pc, sa0, 1
            else:
                # Two alternating slots for the A panel; also keeps the slot
                # offset a run-time value, as for B, so _pack compiles once.
                a_src, a_at, a_rs, a_cs = ap, (ip - ip0) % 2 * mr * kc, 1, mr
                _pack(a, a_off, sa0, sa1, a_patches, m, i0, pc, kc, mr_, ap, a_at)
            for jp in range(jp0, jp1):
                j0 = jp * nr
                cols = min(nr, n - j0)
                at = c_off + i0 * ldc + j0
                # One micro-kernel call site: a tile sticking out of C is
                # computed into `spill` and copied in below.
                full = rows == mr and cols == nr
                epilogue = last and full
                microkernel(a_src, a_at, a_rs, a_cs, mr, 0, bp, (jp - jp0) * nr * kc, nr, kc,
                            c if full else spill,
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
def _gemm(a, a_off, sa0, sa1, a_patches, b, b_off, sb0, sb1, b_patches, c, c_off, ldc, m, n, k,
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
            _block(a, a_off, sa0, sa1, a_patches, b, b_off, sb0, sb1, b_patches, c, c_off, ldc,
                   m, n, k, ip0, min(ip0 + ib_panels, npa), jp0, min(jp0 + jb_panels, npb),
                   bias, bias_axis, relu, mr_, nr_, ap, bp, spill)


# Direct convolution on the micro-kernel ("implicit GEMM"): a tile is MR
# output pixels of one output row by NR output channels, and for each kernel
# tap the micro-kernel runs over the group's input channels, reading the MR
# pixels straight from the zero-padded input (row stride sw, depth stride one
# channel's row) against the tap's packed weights, accumulating across taps
# in the tile.  It lives here, with the micro-kernel it compiles in (see the
# module docstring on caching).
@intrinsic
def _transpose_block(typingctx, src, s_off, s_stride, dst, d_off, d_stride):
    """dst[d_off + c*d_stride + r] = src[s_off + r*s_stride + c] for r, c < L,
    L the lanes of a vector: L vector loads, log2(L) rounds of L two-input
    shuffles (each round interleaves row i with row i + L/2, which after
    log2(L) rounds is the transpose), L vector stores."""
    sig = types.void(src, s_off, s_stride, dst, d_off, d_stride)

    def codegen(context, builder, sig, args):
        itemsize = sig.args[0].dtype.bitwidth // 8
        lanes = _VECTOR_BYTES // itemsize
        vty = ir.VectorType(context.get_data_type(sig.args[0].dtype), lanes)
        intp = context.get_value_type(types.intp)

        def rows_at(i):
            arr = context.make_array(sig.args[i])(context, builder, args[i]).data
            off = context.cast(builder, args[i + 1], sig.args[i + 1], types.intp)
            stride = context.cast(builder, args[i + 2], sig.args[i + 2], types.intp)
            return [builder.bitcast(builder.gep(arr, [builder.add(off, builder.mul(
                stride, ir.Constant(intp, r)))]), vty.as_pointer()) for r in range(lanes)]

        rows = [builder.load(ptr, align=itemsize) for ptr in rows_at(0)]
        half = lanes // 2
        i32v = ir.VectorType(ir.IntType(32), lanes)
        lo = ir.Constant(i32v, [x for i in range(half) for x in (i, lanes + i)])
        hi = ir.Constant(i32v, [x for i in range(half, lanes) for x in (i, lanes + i)])
        for _ in range(lanes.bit_length() - 1):
            new = []
            for i in range(half):
                new += [builder.shuffle_vector(rows[i], rows[i + half], lo),
                        builder.shuffle_vector(rows[i], rows[i + half], hi)]
            rows = new
        for ptr, row in zip(rows_at(3), rows):
            builder.store(row, ptr, align=itemsize)
        return context.get_dummy_value()

    return sig, codegen


def lanes_of(arr):
    return _VECTOR_BYTES // arr.dtype.itemsize


@overload(lanes_of)
def _lanes_of(arr):
    lanes = _VECTOR_BYTES // (arr.dtype.bitwidth // 8)
    return lambda arr: lanes


@numba.njit(**_runtime.JIT)
def _pack_conv_panel(w, first, valid, red, nr, dst):
    """Output channels first..first+valid of w (K, red) flat (red = C/groups
    * kh * kw) -> dst[red][NR], channels past valid zero: a transpose, by
    register-sized blocks where they fit."""
    lanes = lanes_of(dst)
    for q in range(red):
        for j in range(valid, nr):
            dst[q * nr + j] = 0
    jv, qv = valid - valid % lanes, red - red % lanes
    for j0 in range(0, jv, lanes):
        for q0 in range(0, qv, lanes):
            _transpose_block(w, (first + j0) * red + q0, red, dst, q0 * nr + j0, nr)
    for j in range(valid):
        src = w[(first + j) * red:(first + j + 1) * red]
        for q in range(qv if j < jv else 0, red):
            dst[q * nr + j] = src[q]


@numba.njit(**_runtime.PARALLEL_JIT)
def conv_tiles(xp, c, hp, wp, w, y, nchw, n_, k, oh, ow, sh, sw, dh, dw, kh, kw, groups,
               bias, has_bias, relu, nthreads):
    """xp: zero-padded input (N, Hp, C, Wp) flat (one padded row of every
    channel after another), with at least MR * sw elements of slack after
    it; w: the weights (K, C/groups, kh, kw) flat, packed per block as
    [channel][tap][NR] (the micro-kernel reads a tap's rows taps * NR
    apart); y: output (N, K, OH, OW) flat if nchw, else (N, OH, OW, K).
    Work items are (block of NR output channels, output row), block major,
    split into one contiguous run per thread: a thread packs each of its
    blocks' weights once into its own buffer, where they stay (L2) for all
    the block's rows.  A tile accumulates over the taps in the thread's own
    MR x NR buffer (L1), then bias and ReLU are applied on its way to y."""
    mr, nr = conv_tile_of(y)
    zero = zero_of(y)
    cg, kg = c // groups, k // groups
    npk = (kg + nr - 1) // nr
    taps = kh * kw
    panel = taps * cg * nr
    ohw = oh * ow
    # Rows of at most half a tile: a tile takes two output rows, whose pixels
    # are consecutive in y, as two runs of the micro-kernel's A rows.
    pair = 2 if 2 * ow <= mr and oh > 1 else 1
    row_groups = (oh + pair - 1) // pair
    rows_total = n_ * row_groups
    items = groups * npk * rows_total
    per_thread = panel + mr * nr
    buffers = np.empty(nthreads * per_thread, y.dtype)
    for t in numba.prange(nthreads):
        wpk = buffers[t * per_thread:t * per_thread + panel]
        acc = buffers[t * per_thread + panel:(t + 1) * per_thread]
        packed = -1
        for item in range(t * items // nthreads, (t + 1) * items // nthreads):
            blk = item // rows_total
            n = (item % rows_total) // row_groups
            oy = (item % row_groups) * pair
            g = blk // npk
            j0 = g * kg + (blk % npk) * nr
            cols = min(nr, kg - (blk % npk) * nr)
            if blk != packed:
                _pack_conv_panel(w, j0, cols, cg * taps, nr, wpk)
                packed = blk
            two = pair == 2 and oy + 1 < oh
            width = 2 * ow if two else ow
            split = ow if two else mr
            jump = sh * c * wp - ow * sw if two else 0
            for ox0 in range(0, width, mr):
                rows = min(mr, width - ox0)
                for tap in range(taps):
                    i = tap // kw
                    jj = tap % kw
                    a_off = ((n * hp + oy * sh + i * dh) * c + g * cg) * wp + ox0 * sw + jj * dw
                    conv_microkernel(xp, a_off, sw, wp, split, jump, wpk, tap * nr, taps * nr,
                                     cg, acc, 0, nr, tap > 0, bias, 0, -1, False)
                pix = oy * ow + ox0
                if nchw:
                    for j in range(cols):
                        at = (n * k + j0 + j) * ohw + pix
                        yrow = y[at:at + rows]
                        b = bias[j0 + j] if has_bias else zero
                        for r in range(rows):
                            v = acc[r * nr + j] + b
                            yrow[r] = zero if relu and v < zero else v
                else:
                    for r in range(rows):
                        at = (n * ohw + pix + r) * k + j0
                        yrow = y[at:at + cols]
                        arow = acc[r * nr:r * nr + cols]
                        for j in range(cols):
                            v = arow[j] + (bias[j0 + j] if has_bias else zero)
                            yrow[j] = zero if relu and v < zero else v


@numba.njit(**_runtime.JIT)
def _split(m, n, mr, nr, ncb_panels, nthreads):
    """(row blocks, column blocks) of C, one task each: column blocks narrow
    enough for their packed B to stay in L2 (ncb_panels B panels each), then
    more blocks until every thread has the same number, splitting the
    dimension whose split repacks the smaller operand (more column blocks
    repack A, more row blocks B)."""
    npa, npb = (m + mr - 1) // mr, (n + nr - 1) // nr
    n_jb, n_ib = (npb + ncb_panels - 1) // ncb_panels, 1
    while (n_ib * n_jb) % nthreads and (n_ib < npa or n_jb < npb):
        if (m <= n and n_jb < npb) or n_ib >= npa:
            n_jb += 1
        else:
            n_ib += 1
    return n_ib, n_jb


# GEMV (M = 1 or N = 1): y[r] = sum_p mat[r, p] * vec[p] over a matrix
# read in place, at memory speed.  It is a row-dot kernel when the matrix's
# rows are contiguous (linear's weight), and axpy steps (y += vec[p] *
# mat[:, p]) when its columns are (matmul by a row-major B).  The dot's sums
# are reassociated (fastmath "reassoc", this kernel only) so that LLVM
# vectorises them; NaN and Inf still propagate.
_GEMV_JIT = dict(_runtime.PARALLEL_JIT, fastmath=_runtime.FASTMATH | {"reassoc"})
_AXPY_CHUNK = 4096  # most outputs per axpy task: the accumulators stay in L1


@numba.njit(**_runtime.JIT)
def _gemv_store(y, at, value, bias, bias_at, relu):
    if bias.size:
        value += bias[bias_at]
    if relu and value < zero_of(y):
        value = zero_of(y)
    y[at] = value


@numba.njit(**_GEMV_JIT)
def _gemv(mat, m_off, s_row, s_p, vec, v_off, s_v, k, y, y_off, s_y, rows,
          bias, bias_step, relu, nthreads):
    """y[y_off + r*s_y] = sum_p mat[m_off + r*s_row + p*s_p] * vec[v_off + p*s_v]
    (+ bias[r*bias_step] when bias is not empty) (then ReLU), for r < rows;
    s_p == 1 (row-dot) or s_row == 1 (axpy)."""
    zero = zero_of(y)
    v = np.empty(k, y.dtype)
    for p in range(k):
        v[p] = vec[v_off + p * s_v]
    if s_p == 1:
        for t in numba.prange(nthreads):
            r = t * rows // nthreads
            hi = (t + 1) * rows // nthreads
            while r + 4 <= hi:  # four rows per pass share the loads of v
                at = m_off + r * s_row
                m0 = mat[at:at + k]
                m1 = mat[at + s_row:at + s_row + k]
                m2 = mat[at + 2 * s_row:at + 2 * s_row + k]
                m3 = mat[at + 3 * s_row:at + 3 * s_row + k]
                s0 = s1 = s2 = s3 = zero
                for p in range(k):
                    vp = v[p]
                    s0 += m0[p] * vp
                    s1 += m1[p] * vp
                    s2 += m2[p] * vp
                    s3 += m3[p] * vp
                _gemv_store(y, y_off + r * s_y, s0, bias, r * bias_step, relu)
                _gemv_store(y, y_off + (r + 1) * s_y, s1, bias, (r + 1) * bias_step, relu)
                _gemv_store(y, y_off + (r + 2) * s_y, s2, bias, (r + 2) * bias_step, relu)
                _gemv_store(y, y_off + (r + 3) * s_y, s3, bias, (r + 3) * bias_step, relu)
                r += 4
            while r < hi:
                at = m_off + r * s_row
                m0 = mat[at:at + k]
                s0 = zero
                for p in range(k):
                    s0 += m0[p] * v[p]
                _gemv_store(y, y_off + r * s_y, s0, bias, r * bias_step, relu)
                r += 1
    elif rows <= _AXPY_CHUNK and nthreads > 1 and k >= 4 * nthreads:
        # Few outputs: the threads split the reduction instead, each streaming
        # one contiguous run of whole matrix rows (split columns would give
        # each thread short pieces of every row) into accumulators of its
        # own, added up at the end.
        accs = np.zeros((nthreads, rows), y.dtype)
        for t in numba.prange(nthreads):
            _axpy(mat, m_off, s_p, v, t * k // nthreads, (t + 1) * k // nthreads, accs[t])
        for i in range(rows):
            total = accs[0, i]
            for t in range(1, nthreads):
                total += accs[t, i]
            _gemv_store(y, y_off + i * s_y, total, bias, i * bias_step, relu)
    else:
        # One chunk of outputs per thread (longer contiguous reads of each
        # matrix row), more if the accumulators would leave L1.
        n_chunks = max(nthreads, (rows + _AXPY_CHUNK - 1) // _AXPY_CHUNK)
        for chunk in numba.prange(n_chunks):
            r0 = chunk * rows // n_chunks
            width = (chunk + 1) * rows // n_chunks - r0
            acc = np.zeros(width, y.dtype)
            _axpy(mat, m_off + r0, s_p, v, np.int64(0), k, acc)  # int64: one compile
            for i in range(width):
                _gemv_store(y, y_off + (r0 + i) * s_y, acc[i], bias, (r0 + i) * bias_step, relu)


@numba.njit(**_runtime.JIT)
def _axpy(mat, m_off, s_p, v, p0, p1, acc):
    """acc[i] += sum_{p0 <= p < p1} v[p] * mat[m_off + p*s_p + i] for i < acc.size."""
    width = acc.size
    p = p0
    while p + 4 <= p1:  # four matrix rows per pass over the accumulators
        at = m_off + p * s_p
        c0 = mat[at:at + width]
        c1 = mat[at + s_p:at + s_p + width]
        c2 = mat[at + 2 * s_p:at + 2 * s_p + width]
        c3 = mat[at + 3 * s_p:at + 3 * s_p + width]
        v0, v1, v2, v3 = v[p], v[p + 1], v[p + 2], v[p + 3]
        for i in range(width):
            acc[i] += v0 * c0[i] + v1 * c1[i] + v2 * c2[i] + v3 * c3[i]
        p += 4
    while p < p1:
        at = m_off + p * s_p
        c0 = mat[at:at + width]
        v0 = v[p]
        for i in range(width):
            acc[i] += v0 * c0[i]
        p += 1


@numba.njit(**_runtime.JIT)
def run_kernel(a, a_off, sa0, sa1, a_patches, b, b_off, sb0, sb1, b_patches, c, c_off, ldc,
               m, n, k, bias, bias_axis, relu, nthreads):
    """The GEMM on flat operands (see run), callable from Python and from
    nopython code (fastconv.jit); m, n, k >= 1, c rows contiguous."""
    plain = a_patches.ow == 0 and b_patches.ow == 0
    if plain and n == 1 and (sa1 == 1 or sa0 == 1):  # y[i] = A[i, :] . B[:, 0]
        _gemv(a, a_off, sa0, sa1, b, b_off, sb0, k, c, c_off, ldc, m,
              bias[:0] if bias_axis < 0 else bias, 1 if bias_axis == 0 else 0, relu, nthreads)
        return
    if plain and m == 1 and (sb0 == 1 or sb1 == 1):  # y[j] = A[0, :] . B[:, j]
        _gemv(b, b_off, sb1, sb0, a, a_off, sa1, k, c, c_off, np.int64(1), n,
              bias[:0] if bias_axis < 0 else bias, 1 if bias_axis == 1 else 0, relu, nthreads)
        return
    mr, nr = tile_of(c)
    n_ib, n_jb = _split(m, n, mr, nr, blocking_of(c)[1], nthreads)
    # MR and NR as int64 values (literals would compile the packing twice).
    _gemm(a, a_off, sa0, sa1, a_patches, b, b_off, sb0, sb1, b_patches, c, c_off, ldc, m, n, k,
          bias, bias_axis, relu, n_ib, n_jb, np.int64(mr), np.int64(nr), nthreads)


def matrix(arr):
    """A 2-D array as a GEMM operand: (span, offset, stride0, stride1, NO_PATCHES)."""
    span, off, (s0, s1) = _runtime.flat(arr)
    return span, off, s0, s1, NO_PATCHES


def run(a, b, m, n, k, out, bias=None, bias_axis=1, relu=False):
    """out[:] = A @ B (+ bias) (then ReLU) for operands that are 2-D arrays,
    made by matrix() or the convolution's patch operand; out is (m, n) with
    any strides."""
    a, b = (matrix(op) if isinstance(op, np.ndarray) else op for op in (a, b))
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
    _runtime.launch(run_kernel, *a, *b, c, c_off, ldc, m, n, k,
                    _runtime.vector(bias, out.dtype), bias_axis, bool(relu), nthreads)
    if target is not out:
        out[...] = target


def gemm(a, b, out, bias=None, bias_axis=1, relu=False):
    """out[:] = a @ b (+ bias along bias_axis) (then ReLU); see fastconv.backends."""
    run(a, b, a.shape[0], b.shape[1], a.shape[1], out, bias, bias_axis, relu)
