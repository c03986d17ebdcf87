"""Backends.  Each provides the same two entry points on validated arguments:

gemm(a, b, out, bias=None, bias_axis=1, relu=False)
    out[:] = a @ b (+ bias along axis bias_axis of out: 0 = per row, 1 = per
    column) (then ReLU).  a, b, out are 2-D with any strides; out does not
    overlap a, b or bias.
conv2d(x, weight, bias, p, algorithm, out, workspace_bytes, relu=False)
    algorithm is "direct" or "im2col"; x in p.layout with any strides, weight
    contiguous (K, C/groups, kh, kw), out C-contiguous of shape p.out_shape.
pool2d(x, p, out)
    max or average pooling (p: fastconv._args.PoolParams) of NCHW x, any
    strides, into out, C-contiguous of shape p.out_shape.

relu is False, True or, for a backend with Capabilities.fused_prelu, the PReLU
slopes along the output channels (fastconv._args.activation); fastconv.api
applies the slopes itself after a backend without it.

The C backend's gemm and conv2d also take packed= (a pack made by its
pack_gemm / pack_conv, see fastconv.packed), which the others never receive,
and clip_max= (with relu=True, min(y, clip_max) in the store too: ReLU6),
which fastconv.api applies itself after a backend without Capabilities.fused_clip,
and accumulate=True (out += a @ b before the epilogue; Capabilities.accumulate).

The C backend also has isa() (the kernels' ISA, part of a prepared call's
key) and prepare(run, x, y, constants), which records the C calls of run()
for fastconv.api.PreparedCall to repeat; a backend without them gets no
prepared calls.

Lowering to GEMM without a copy (full-size and 1x1 convs) happens above the
backends, in fastconv.api, so every backend runs those through its gemm.

Each backend also declares its Capabilities (below), which fastconv.api and
fastconv.lower read instead of testing the backend's name.
"""
import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Capabilities:
    """What a backend implements and what it prefers."""
    #: Its conv2d runs fastconv.lower's plan: full-size and 1x1 convs go to its
    #: gemm and conv2d gets the planned algorithm.  False: conv2d computes every
    #: conv from the definition, whatever the plan (the oracle).
    runs_plan: bool
    #: gemm and conv2d take packed= (the packs of fastconv.packed.PackedWeight).
    packed: bool
    #: The kinds of conv (fastconv.lower.conv_kind: "depthwise", "grouped",
    #: "1x1", "kxk") that algorithm="auto" runs as direct convolution; the
    #: others run im2col.  Full-size and pointwise convs are GEMMs before this.
    auto_direct: frozenset
    #: gemm and conv2d take PReLU slopes (an array) where they take relu, and
    #: apply them in their store; fastconv.api applies them after the others.
    fused_prelu: bool = False
    #: It runs algorithm="winograd" (and "auto" may pick it, by fastconv.config).
    winograd: bool = False
    #: gemm and conv2d take clip_max= and clamp at it after the ReLU in their store.
    fused_clip: bool = False
    #: gemm takes accumulate=True (out += a @ b, then bias and activation), so
    #: fastconv.api adds a residual in the store of a conv it runs as a GEMM.
    accumulate: bool = False


# The C cost model (docs/TUNING.md, "Algorithm choice"): direct convolution
# reads each input pixel kh*kw times from cache instead of copying it kh*kw
# times, so it wins (or ties) whenever the kernel has more than one tap.  With a
# single tap the lowering copy is a mere subsample and the GEMM's packed panels
# beat the direct tiles' strided loads, so ungrouped 1x1 convs go to im2col.
_C_DIRECT = frozenset({"depthwise", "grouped", "kxk"})

#: Every backend by name: its module (imported on first use) and capabilities,
#: known without importing it.
_MODULES = {"c": "c", "numba": "numba", "numpy": "reference"}
CAPABILITIES = {
    "c": Capabilities(runs_plan=True, packed=True, auto_direct=_C_DIRECT, fused_prelu=True,
                      winograd=True, fused_clip=True, accumulate=True),
    # Numba's direct conv runs on register tiles like the C core's, and its
    # algorithms rank the same (docs/TUNING.md): the C rule.
    "numba": Capabilities(runs_plan=True, packed=False, auto_direct=_C_DIRECT),
    # The oracle runs no plan; fastconv.lower.conv2d(backend="numpy") reports the C one.
    "numpy": Capabilities(runs_plan=False, packed=False, auto_direct=_C_DIRECT),
}
#: The backend of a process that sets none.
DEFAULT = "c"
_loaded = {}


def capabilities(name: str) -> Capabilities:
    """The Capabilities of backend "c", "numba" or "numpy" (nothing is imported)."""
    return CAPABILITIES[name]


def get(name: str):
    """The backend module for "c", "numba" or "numpy" (imported on first use)."""
    mod = _loaded.get(name)
    if mod is None:
        mod = _loaded[name] = importlib.import_module(f"{__name__}.{_MODULES[name]}")
    return mod
