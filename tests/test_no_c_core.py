"""Without the C core: the Numba backend, fastconv.jit and the NumPy oracle
still work, and the C backend says clearly that it is not built.

A subprocess hides fastconv._native behind a finder that makes its import
fail, as a failed build or a broken shared library would."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

HIDDEN = r'''
import importlib.abc, json, sys

class NoCCore(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "fastconv._native":
            raise ImportError("fastconv._native hidden by the test")
        return None

sys.meta_path.insert(0, NoCCore())
import numba
import numpy as np
import fastconv
import fastconv.jit as fj

rng = np.random.default_rng(4)
x = rng.integers(-3, 4, (2, 3, 8, 9)).astype(np.float32)
w = rng.integers(-3, 4, (4, 3, 3, 3)).astype(np.float32)
a = rng.integers(-3, 4, (7, 30)).astype(np.float64)
out = {}
for be in ("numba", "numpy"):
    for algo in ("direct", "im2col"):
        out[f"conv {be} {algo}"] = fastconv.conv2d(x, w, padding=1, stride=(1, 2),
                                                   algorithm=algo, backend=be).tolist()
    out[f"matmul {be}"] = fastconv.matmul(a, a.T, backend=be).tolist()
out["conv jit"] = fj.conv2d(x, w, padding=1, stride=(1, 2)).tolist()
out["linear jit"] = numba.njit(lambda a: fj.linear(a, a))(a).tolist()
try:
    fastconv.conv2d(x, w, backend="c")
    out["c error"] = None
except ImportError as e:
    out["c error"] = str(e)
out["native loaded"] = "fastconv._native" in sys.modules
print(json.dumps(out))
'''


@pytest.mark.slow
def test_numba_jit_and_oracle_run_without_the_c_core():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", HIDDEN], capture_output=True, text=True,
                          env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["native loaded"] is False
    assert r["c error"] is not None and "C core" in r["c error"] and "not built" in r["c error"]
    rng = np.random.default_rng(4)
    x = rng.integers(-3, 4, (2, 3, 8, 9)).astype(np.float64)
    w = rng.integers(-3, 4, (4, 3, 3, 3)).astype(np.float64)
    a = rng.integers(-3, 4, (7, 30)).astype(np.float64)
    # first principles: each output pixel is its zero-padded window dotted with each filter
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.array([[[[(xp[n, :, oy:oy + 3, 2 * ox:2 * ox + 3] * w[k]).sum()
                        for ox in range(5)] for oy in range(8)] for k in range(4)]
                     for n in range(2)])
    for key in ("conv numba direct", "conv numba im2col", "conv numpy direct",
                "conv numpy im2col", "conv jit"):
        np.testing.assert_array_equal(r[key], want, err_msg=key)
    for key in ("matmul numba", "matmul numpy", "linear jit"):
        np.testing.assert_array_equal(r[key], a @ a.T, err_msg=key)
