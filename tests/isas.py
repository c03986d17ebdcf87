"""The C backend's ISAs on this CPU, a switch to run a block on one of them,
and a record of which ISAs' kernels actually ran (for the pytest summary)."""
import contextlib

KNOWN = {"generic": set(), "avx2": {"avx2", "fma"}, "avx512": {"avx2", "fma", "avx512f"}}
_ran = set()


def c_isas():
    """Every kernel ISA this CPU can run ("generic" always), per the C core's CPUID."""
    from fastconv.backends import c
    feats = set(c.cpu_features())
    return [name for name, needs in KNOWN.items() if needs <= feats]


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


def track():
    """From now on, record the ISA of every C backend gemm/conv2d call."""
    from fastconv.backends import c
    for entry in ("gemm", "conv2d"):
        def recorded(*args, _kernel=getattr(c, entry), **kwargs):
            _ran.add(c.isa())
            return _kernel(*args, **kwargs)
        setattr(c, entry, recorded)


def report():
    """(ISAs whose kernels ran, ISAs this CPU supports that did not run, ISAs it lacks)."""
    supported = c_isas()
    return (sorted(_ran), [i for i in supported if i not in _ran],
            [i for i in KNOWN if i not in supported])
