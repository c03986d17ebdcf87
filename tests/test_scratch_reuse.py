"""The C core keeps a few freed multi-MiB scratch buffers (padded inputs,
packed panels, workspaces) for later calls (csrc/alloc.c).  Such a buffer
comes back holding the last call's data, so every kernel must write all of
the scratch it reads: after a call on an unpadded NaN-filled input as large
as the padded one (its scratch, the same size, is NaN where the padding goes),
a call gives bit for bit the result it gave before, for each algorithm whose
scratch is that large."""
import numpy as np
import pytest

import fastconv
from checks import slow_except

# (C, K, groups, kernel, padding, algorithm): padded inputs and packs of 6+ MiB.
CASES = [(64, 64, 1, 3, 1, "direct"), (64, 64, 64, 3, 1, "direct"),
         (64, 64, 1, 3, 1, "im2col"), (64, 64, 1, 3, 1, "winograd"),
         (64, 48, 1, 1, 0, "auto"), (64, 64, 1, 3, 2, "direct")]


@pytest.mark.parametrize("c, k, groups, kernel, padding, algorithm",
                         slow_except(CASES, (1, 2, 4), unpack=True))
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_reused_scratch_holds_no_stale_data(c, k, groups, kernel, padding, algorithm, layout):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, c, 160, 160)).astype(np.float32)
    w = rng.standard_normal((k, c // groups, kernel, kernel)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))

    def run(inp, pad=padding):
        return fastconv.conv2d(inp, w, b, padding=pad, groups=groups, algorithm=algorithm,
                               layout=layout, backend="c")
    first = run(x)
    assert np.isfinite(first).all()
    side = 160 + 2 * padding
    nan = np.full((1, c, side, side) if layout == "NCHW" else (1, side, side, c), np.nan,
                  np.float32)
    assert np.isnan(run(nan, 0)).all()             # its scratch is freed full of NaN
    np.testing.assert_array_equal(run(x), first)
    np.testing.assert_array_equal(run(x), first)
