"""GEMM: fastconv's backends next to NumPy's BLAS and torch.mm, over the shapes
of issue 3 (square, what CNN layers lower to, and the batch-1 GEMV)."""
import numpy as np
import pytest

import fastconv
from fastconv.bench.suites import GEMM

from bench_helpers import arrays, check

IMPLS = ["c", "numba", "numpy", "torch"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", GEMM, ids=lambda s: s.name)
def test_gemm(shape, impl, reduced, measure, request):
    entry = shape.reduced() if reduced else shape
    a, b = arrays(entry, 1)
    if impl == "numpy":
        request.getfixturevalue("blas_threads")
        fn = lambda: np.matmul(a, b)
    elif impl == "torch":
        torch = request.getfixturevalue("torch")
        at, bt = torch.from_numpy(a), torch.from_numpy(b)
        fn = lambda: torch.mm(at, bt).numpy()
    else:
        fn = lambda: fastconv.matmul(a, b, backend=impl)
    check(measure(entry, fn), entry)
