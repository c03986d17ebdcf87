"""python -m fastconv info | bench | demo, and the benchmark harness behind them."""
import json
import subprocess
import sys
import types

import numpy as np
import pytest

import fastconv
from fastconv import __main__ as cli
from fastconv import lower
from fastconv.bench import cli as bench_cli, machine, peers, report, runner, suites
from reference import conv_out_size

# Tiny timing budget: these tests check what is written, never how fast.
FAST = ["--seconds", "0", "--rounds", "1"]
ROW_KEYS = {"layer", "backend", "algorithm", "ms", "gflops", "peak_fraction", "threads", "batch"}


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_info_prints_measured_peak_and_bandwidth(capsys):
    code, out, _ = run(capsys, "info", "--threads", "1")
    assert code == 0
    assert fastconv.backends.c.isa() in out
    peak_line = next(l for l in out.splitlines() if "<- kernels" in l)
    assert float(peak_line.split()[3]) > 0
    bw_line = next(l for l in out.splitlines() if l.strip().startswith("memory"))
    assert float(bw_line.split()[3]) > 0
    assert "GFLOP/s" in out and "GB/s" in out


def test_probes_are_cached_and_reject_unknown_isa():
    assert machine.fma_peak(1) == machine.fma_peak(1)   # cached: the same measurement
    assert machine.peak(1, dtype_size=8) == pytest.approx(machine.fma_peak(1) / 2)
    with pytest.raises(ValueError):
        machine.fma_peak(1, "sse9")


@pytest.mark.slow
def test_bench_lenet_writes_json_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    js, png = tmp_path / "r.json", tmp_path / "r.png"
    code, out, _ = run(capsys, "bench", "--suite", "lenet", "--compare", "torch,onnxruntime",
                       "--backends", "c,numba", "--algorithms", "auto,direct",
                       "--json", str(js), "--plot", str(png), *FAST)
    assert code == 0
    doc = json.loads(js.read_text())
    assert {"cpu", "isa", "fma_peak_gflops", "read_bandwidth_gbps"} <= set(doc["machine"])
    rows = doc["rows"]
    assert {r["layer"] for r in rows} == {"conv1", "conv2"}
    for r in rows:
        assert ROW_KEYS <= set(r)
        assert r["ms"] > 0 and r["gflops"] > 0 and r["peak_fraction"] > 0
        assert r["agrees"], r
    mine = {(r["backend"], r["algorithm"]) for r in rows if r["layer"] == "conv1"}
    assert {("c", "auto"), ("c", "direct"), ("numba", "auto"), ("numba", "direct")} <= mine
    backends = {r["backend"] for r in rows}
    assert ("torch" in backends) == _has("torch")
    assert ("onnxruntime" in backends) == (_has("onnxruntime") and _has("onnx"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "lenet/conv1" in out and "geomean c/auto" in out


def _has(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


@pytest.mark.slow
def test_missing_peer_is_one_line_note(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)   # import torch now raises ImportError
    js = tmp_path / "r.json"
    code, out, err = run(capsys, "bench", "--suite", "lenet", "--compare", "torch",
                         "--json", str(js), *FAST)
    assert code == 0
    notes = [l for l in out.splitlines() if "torch" in l]
    assert len(notes) == 1 and notes[0].startswith("note: skipping peer torch")
    assert "Traceback" not in out + err
    assert {r["backend"] for r in json.loads(js.read_text())["rows"]} == {"c"}


@pytest.mark.slow
def test_without_matplotlib_or_tqdm_bench_still_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    png, md = tmp_path / "r.png", tmp_path / "r.md"
    code, out, err = run(capsys, "bench", "--suite", "lenet", "--compare", "none",
                         "--plot", str(png), "--markdown", str(md), *FAST)
    assert code == 0
    assert "--plot needs matplotlib" in out and not png.exists()
    assert "[1/2] lenet/conv1" in err and "[2/2] lenet/conv2" in err   # plain progress
    text = md.read_text()
    assert "python -m fastconv bench --suite lenet" in text
    assert "| lenet/conv1 |" in text and "| lenet/conv2 |" in text


def test_bad_arguments_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--suite", "nosuch"])
    assert exc.value.code == 2
    assert "unknown suite" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["bench", "--compare", "tensorflow"])
    assert cli.main(["frobnicate"]) == 2


def test_demo_without_demo_module_says_so(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "fastconv.demo", None)   # importing it now fails
    code, out, err = run(capsys, "demo")
    assert code == 1 and "no demo module" in err and "Traceback" not in err


def test_demo_passes_its_arguments_on(monkeypatch):
    seen = []
    fake = types.ModuleType("fastconv.demo")
    fake.main = lambda argv: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, "fastconv.demo", fake)
    assert cli.main(["demo", "--quick"]) == 0 and seen == [["--quick"]]


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "fastconv", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "info" in out and "bench" in out and "demo" in out


# ---- the harness ---------------------------------------------------------

def test_suites_hold_every_layer_and_gemm_of_the_issues():
    conv = suites.SUITES["conv"]
    assert len(conv) == 26 and len({l.id for l in conv}) == 26
    assert [len(suites.SUITES[s]) for s in ("resnet50", "vgg16", "alexnet", "lenet",
                                            "mobilenet", "pnet")] == [15, 6, 1, 2, 1, 1]
    assert len(suites.GEMM) == 11
    assert ("gemm", 1, 4096, 25088) in {("gemm", g.m, g.n, g.k) for g in suites.GEMM}
    assert suites.GEMM[-1].memory_bound and not suites.GEMM[0].memory_bound
    assert set(suites.SUITES["quick"]) <= set(suites.SUITES["all"])


@pytest.mark.parametrize("layer", suites.SUITES["conv"], ids=lambda l: l.id)
def test_layer_geometry_matches_fastconv_lowering(layer):
    for entry in (layer, layer.reduced()):
        plan = lower.conv2d((2, entry.c, entry.h, entry.w),
                            (entry.k, entry.c // entry.groups, entry.kh, entry.kw),
                            entry.stride, entry.pad, 1, entry.groups)
        oh, ow = entry.out_hw
        # the output size as PyTorch documents it (tests/reference.py, no fastconv code)
        assert (oh, ow) == (conv_out_size(entry.h, entry.pad, entry.pad, entry.kh, 1, entry.stride),
                            conv_out_size(entry.w, entry.pad, entry.pad, entry.kw, 1, entry.stride))
        assert plan.m == 2 * oh * ow and plan.n * plan.groups == entry.k
        assert entry.flops(2) == 2 * plan.m * plan.n * plan.k * plan.groups
    small = layer.reduced()
    assert (small.kh, small.kw, small.stride, small.pad) == (layer.kh, layer.kw, layer.stride,
                                                             layer.pad)
    assert (small.groups == small.c) == (layer.groups == layer.c)
    assert ((small.h, small.w) == (small.kh, small.kw)) == ((layer.h, layer.w) == (layer.kh, layer.kw))


def test_runner_flags_a_wrong_result(monkeypatch):
    """The reference is the NumPy oracle, not an implementation under test: with
    no peer, a wrong kernel (here the layers every fastconv row runs) is
    flagged, and so is a wrong peer."""
    layer = suites.LENET[1]
    real = runner.api.conv2d
    real_forward = runner.nn.Conv2d.forward   # what the fastconv rows run
    monkeypatch.setattr(runner.nn.Conv2d, "forward",
                        lambda self, *a, **k: real_forward(self, *a, **k) * 1.01)
    settings = runner.Settings(idle_seconds=0, backends=("c", "numba"), peers=(), min_rounds=1,
                               max_rounds=1, entry_seconds=0)
    rows = runner.run_entry(layer, 1, 1, settings, note=print)
    assert [r["agrees"] for r in rows] == [False, False]
    monkeypatch.setattr(runner.nn.Conv2d, "forward", real_forward)
    monkeypatch.setattr(runner, "peer_impls", lambda entry, arrays, *a: [runner.Impl(
        "torch", None, None, lambda: real(*arrays, entry.stride, entry.pad, backend="c") * 1.01)])
    rows = runner.run_entry(layer, 1, 1, settings, note=print)
    assert [(r["backend"], r["agrees"]) for r in rows] == [
        ("c", True), ("numba", True), ("torch", False)]


def test_interleaved_rounds_alternate_order():
    calls = []
    impls = [runner.Impl(name, None, None, lambda name=name: calls.append(name) or np.zeros(1))
             for name in ("a", "b")]
    settings = runner.Settings(idle_seconds=0, min_rounds=3, max_rounds=3, block_seconds=0,
                               entry_seconds=60)
    times, agrees, reps = runner.time_impls(impls, settings)
    assert reps == {"a": 1, "b": 1} and all(len(t) == 3 for t in times.values())
    assert calls[4:] == ["a", "b", "b", "a", "a", "b"]   # after two warm-ups each


def test_summary_is_a_geometric_mean():
    rows = [{"kind": "conv", "backend": "c", "algorithm": "auto", "threads": 2, "batch": 1,
             "vs_best_peer": v, "peak_fraction": f} for v, f in ((0.5, 0.25), (2.0, 1.0))]
    line, = report.summary(rows)
    assert "1.00x over 2" in line and "worst 0.50x" in line and "50% of peak" in line


def test_full_size_conv_is_also_timed_as_its_fc_layer():
    fc6 = next(l for l in suites.VGG16 if l.name == "fc6").reduced()
    settings = runner.Settings(idle_seconds=0, backends=("c", "numba"), peers=(), min_rounds=1,
                               max_rounds=1, entry_seconds=0)
    rows = runner.run_entry(fc6, 2, 1, settings, note=print)
    assert [(r["backend"], r["algorithm"], r["runs"]) for r in rows] == [
        ("c", "auto", "gemm"), ("c", "linear", "gemm"),
        ("numba", "auto", "gemm"), ("numba", "linear", "gemm")]
    assert all(r["agrees"] for r in rows)


def test_sliding_window_entry_compares_both_forms(capsys):
    pytest.importorskip("fastconv.models")
    entry = suites.SLIDING[0].reduced()
    settings = runner.Settings(idle_seconds=0, peers=(), min_rounds=1, max_rounds=1,
                               entry_seconds=0)
    rows = runner.run_entry(entry, 1, 1, settings, note=print)
    assert [r["algorithm"] for r in rows] == ["fully-convolutional", "sliding-window"]
    assert all(r["agrees"] for r in rows)
    fcn, sliding = rows
    assert sliding["flops"] > fcn["flops"] > 0   # overlapping windows share convolutions
    line, = [l for l in report.summary(rows) if "sliding window" in l]
    assert f"FLOP ratio {sliding['flops'] / fcn['flops']:.2f}x" in line


def test_a_failing_peer_is_dropped_with_a_note(monkeypatch):
    def broken(*args):
        raise RuntimeError("no kernel for this layer")
    monkeypatch.setattr(runner._peers, "conv", lambda *a: lambda: broken())
    notes = []
    settings = runner.Settings(idle_seconds=0, peers=("torch",), min_rounds=1, max_rounds=1,
                               entry_seconds=0)
    rows = runner.run_entry(suites.LENET[0], 1, 1, settings, note=notes.append)
    assert [r["backend"] for r in rows] == ["c"]
    assert notes == ["skipping torch: it failed (RuntimeError: no kernel for this layer)"]


def test_a_call_longer_than_the_budget_is_timed_once():
    ticks = iter(range(0, 10_000, 1))
    clock = lambda: next(ticks)          # every clock read is one "second" later
    impls = [runner.Impl("c", "auto", None, lambda: np.zeros(1))]
    settings = runner.Settings(idle_seconds=0, min_rounds=3, max_rounds=5, entry_seconds=0.5)
    times, _, _ = runner.time_impls(impls, settings, clock=clock)
    assert len(times["c/auto"]) == 1


def test_warns_when_openblas_is_pinned_to_an_older_core():
    warn = peers.blas_core_warning
    assert warn({}, "avx512", "SkylakeX") is None
    # Pinned to a core narrower than the CPU's kernels: named in the warning.
    msg = warn({"OPENBLAS_CORETYPE": "Haswell"}, "avx512", "Haswell")
    assert "OPENBLAS_CORETYPE=Haswell" in msg and "avx2" in msg
    assert "Sandybridge" in warn({"OPENBLAS_CORETYPE": "sandybridge"}, "avx2", "Sandybridge")
    # The core OpenBLAS reports wins over the variable's spelling; without it the variable counts.
    assert warn({"OPENBLAS_CORETYPE": "x"}, "avx512", "Zen") is not None
    assert warn({"OPENBLAS_CORETYPE": "Haswell"}, "avx512") is not None
    # A core as wide as the CPU, or one the table does not know, is not judged.
    assert warn({"OPENBLAS_CORETYPE": "SkylakeX"}, "avx512", "SkylakeX") is None
    assert warn({"OPENBLAS_CORETYPE": "Haswell"}, "avx2", "Haswell") is None
    assert warn({"OPENBLAS_CORETYPE": "NEOVERSEN1"}, "generic", "NEOVERSEN1") is None


def test_info_prints_the_openblas_warning(capsys, monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Prescott")
    monkeypatch.setattr(peers, "openblas_architecture", lambda: "Prescott")
    monkeypatch.setattr(machine, "fma_peak", lambda t, isa=None: 100.0)
    monkeypatch.setattr(machine, "read_bandwidth", lambda t: 10.0)
    assert cli.main(["info", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    expected = "warning: OPENBLAS_CORETYPE=Prescott" if bench_cli._c.isa() != "generic" else None
    assert (expected in out) if expected else "OPENBLAS_CORETYPE" not in out
