"""The GEMM micro-kernel: an MR x NR tile of C from packed panels of A and B.

Written as a Numba @intrinsic that emits the LLVM IR directly, because the
accumulators must live in vector registers for the whole k loop.  Plain Numba
code keeps a local accumulator array in memory (it is an NRT allocation LLVM
cannot promote), which costs a load and a store around every FMA; scalar
locals would need LLVM's SLP vectoriser to rebuild the vectors.  Here each
accumulator is an LLVM vector value carried around the k loop by a phi node,
so LLVM allocates it to a register.  Each k step is NV vector loads of B,
MR scalar loads of A splatted to vectors and MR*NV `llvm.fma` calls.  On
AVX-512 hosts `inspect_asm` shows the loop (LLVM unrolls it by 2) as
`vbroadcastss`/`vmovups` feeding `vfmadd231ps zmm` (fp32; `pd` for fp64),
24 per k step, with no accumulator loads or stores inside the loop.

Tile shape per host ISA and dtype (NR = NV vectors of VW lanes):
  AVX-512 (32 vector registers): MR = 12, NV = 2 -> 24 accumulators
  AVX2 / AVX (16 registers):     MR = 6,  NV = 2 -> 12 accumulators
  otherwise (SSE, 16 registers):  MR = 6,  NV = 2 on 16-byte vectors
"""
import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

_features = llvm.get_host_cpu_features()
if _features.get("avx512f"):
    _VECTOR_BYTES, _MR = 64, 12
elif _features.get("avx"):
    _VECTOR_BYTES, _MR = 32, 6
else:
    _VECTOR_BYTES, _MR = 16, 6
_NV = 2


def tile(itemsize: int) -> tuple[int, int]:
    """(MR, NR) of the micro-kernel for elements of `itemsize` bytes."""
    return _MR, _NV * (_VECTOR_BYTES // itemsize)


def tile_of(arr):
    """(MR, NR) for arr's dtype, as compile-time constants inside Numba code."""
    return tile(arr.dtype.itemsize)


@overload(tile_of)
def _tile_of(arr):
    mr, nr = tile(arr.dtype.bitwidth // 8)
    return lambda arr: (mr, nr)


@intrinsic
def microkernel(typingctx, ap, a_off, bp, b_off, kc, c, c_off, ldc, accumulate,
                bias, bias_off, bias_axis, relu):
    """The MR x NR tile T = sum_p ap[a_off + p*MR + i] * bp[b_off + p*NR + j]
    (an MR-tall packed A panel times an NR-wide packed B panel), stored as
        c[c_off + i*ldc + j] = (c[...] if accumulate else 0) + T[i, j]
            (+ bias[bias_off + i] if bias_axis == 0, + bias[bias_off + j] if 1)
            (then x < 0 ? 0 : x if relu; NaN passes)
    ap, bp, c, bias: 1-D contiguous arrays of one float dtype; accumulate and
    relu booleans; the rest integers.  The caller guarantees every index is
    in range."""
    sig = types.void(ap, a_off, bp, b_off, kc, c, c_off, ldc, accumulate,
                     bias, bias_off, bias_axis, relu)

    def codegen(context, builder, sig, args):
        aty = sig.args[0]
        itemsize = aty.dtype.bitwidth // 8
        mr, nr = tile(itemsize)
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
        b0 = builder.gep(data(2), [as_intp(3)])
        c0 = builder.gep(data(5), [as_intp(6)])
        k, ldc_ = as_intp(4), as_intp(7)
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
        a_p = builder.gep(a0, [builder.mul(p, ir.Constant(intp, mr))])
        b_p = builder.gep(b0, [builder.mul(p, ir.Constant(intp, nr))])
        bvec = [vload(b_p, ir.Constant(intp, v * vw)) for v in range(nv)]
        new = []
        for i in range(mr):
            a_i = builder.load(builder.gep(a_p, [ir.Constant(intp, i)]), align=itemsize)
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

        with builder.if_then(context.cast(builder, args[8], sig.args[8], types.boolean)):
            for i in range(mr):
                for v in range(nv):
                    old = builder.load(ptrs[i][v], align=itemsize)
                    update(i, v, lambda x: builder.fadd(x, old))
        bias0 = builder.gep(data(9), [as_intp(10)])
        axis = as_intp(11)
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
        with builder.if_then(context.cast(builder, args[12], sig.args[12], types.boolean)):
            for i in range(mr):
                for v in range(nv):
                    # Ordered x < 0 is false for NaN, so NaN is kept.
                    update(i, v, lambda x: builder.select(builder.fcmp_ordered("<", x, zero),
                                                          zero, x))
        for i in range(mr):
            for v in range(nv):
                builder.store(builder.load(slots[i][v]), ptrs[i][v], align=itemsize)
        return context.get_dummy_value()

    return sig, codegen

