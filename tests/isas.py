"""The C backend's ISAs on this CPU, and a switch to run a block on one of them."""
import contextlib


def c_isas():
    """Every kernel ISA this CPU can run ("generic" always)."""
    from fastconv.backends import c
    feats = set(c.cpu_features())
    return ["generic"] + (["avx2"] if {"avx2", "fma"} <= feats else []) + \
        (["avx512"] if {"avx2", "fma", "avx512f"} <= feats else [])


@contextlib.contextmanager
def using_isa(name):
    """Run the C backend's kernels for ISA `name` (None: leave as is)."""
    if name is None:
        yield
        return
    from fastconv.backends import c
    before = c.isa()
    c.set_isa(name)
    try:
        yield
    finally:
        c.set_isa(before)
