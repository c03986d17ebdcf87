"""Mutation check: does the test suite catch one-line bugs in the argument layer?

Each mutant is one textual change to one file of a scratch copy of the tree
(the working tree is never touched).  For each, the chosen tests run against
the copy, and the mutant counts as killed only if some test fails on a wrong
value (an assertion: a wrong result, shape, or a ValueError that was not
raised), not merely because a mutated check raised ValueError/TypeError
("raised": loud, but no test pins the value).

    PYTHONPATH=src python scripts/mutants.py              # every mutant, default tests
    python scripts/mutants.py same-odd-pixel-top-left -- tests   # one mutant, the whole suite

Needs the compiled C core in src/fastconv (python setup.py build_ext --inplace).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TESTS = ["tests/test_reference.py", "tests/test_peer_properties.py::test_conv2d_regressions",
                 "tests/test_nn.py", "tests/test_validation.py"]

# name: (file, text, replacement)
MUTANTS = {
    # The four from the issue.
    "same-odd-pixel-top-left": ("src/fastconv/_args.py",
        "return (th // 2, th - th // 2, tw // 2, tw - tw // 2)",
        "return (th - th // 2, th // 2, tw - tw // 2, tw // 2)"),
    "full-size-ignores-groups": ("src/fastconv/_args.py",
        "and self.dilation == (1, 1) and self.groups == 1",
        "and self.dilation == (1, 1)"),
    "kernel-fit-height-only": ("src/fastconv/_args.py",
        "if eh > ph or ew > pw:", "if eh > ph:"),
    "pair-padding-swapped": ("src/fastconv/_args.py",
        "return (ph, ph, pw, pw)", "return (pw, pw, ph, ph)"),
    # More of the same kind.
    "same-width-uses-height-dilation": ("src/fastconv/_args.py",
        "th, tw = dilation[0] * (kh - 1), dilation[1] * (kw - 1)",
        "th, tw = dilation[0] * (kh - 1), dilation[0] * (kw - 1)"),
    "nested-padding-top-bottom-swapped": ("src/fastconv/_args.py",
        "return (t, b, l, r)", "return (b, t, l, r)"),
    "padded-width-left-twice": ("src/fastconv/_args.py",
        "return h + padding[0] + padding[1], w + padding[2] + padding[3]",
        "return h + padding[0] + padding[1], w + padding[2] + padding[2]"),
    "out-width-uses-height-stride": ("src/fastconv/_args.py",
        "(pw - ew) // stride[1] + 1", "(pw - ew) // stride[0] + 1"),
    "pair-values-swapped": ("src/fastconv/_args.py",
        "vals = (int(vals[0]), int(vals[1]))", "vals = (int(vals[1]), int(vals[0]))"),
    "full-size-height-only": ("src/fastconv/_args.py",
        "return (self.kh, self.kw) == (self.h, self.w) and",
        "return self.kh == self.h and"),
    "full-size-ignores-padding": ("src/fastconv/_args.py",
        "and self.padding == (0, 0, 0, 0) \\\n            and self.dilation == (1, 1) and self.groups",
        "\\\n            and self.dilation == (1, 1) and self.groups"),
    "pointwise-ignores-stride": ("src/fastconv/_args.py",
        "return (self.kh, self.kw) == (1, 1) and self.stride == (1, 1) \\",
        "return (self.kh, self.kw) == (1, 1) \\"),
    "full-size-nhwc-flattens-hw-swapped": ("src/fastconv/api.py",
        "else x.transpose(0, 3, 1, 2).reshape(p.n, -1)",
        "else x.transpose(0, 3, 2, 1).reshape(p.n, -1)"),
    "pool-ceil-drop-test-off-by-one": ("src/fastconv/_args.py",
        "if ceil_mode and (out - 1) * s >= size + before:",
        "if ceil_mode and (out - 1) * s > size + before:"),
    "pool-ceil-ignored": ("src/fastconv/_args.py",
        "(s - 1 if ceil_mode else 0)", "0"),
    "pool-window-width-uses-height-stride": ("src/fastconv/nn.py",
        "j:j + sw * (ow - 1) + 1:sw]", "j:j + sw * (ow - 1) + 1:sh]"),
    "pool-extra-width-uses-height-padding": ("src/fastconv/nn.py",
        "extra_w = max(0, (ow - 1) * sw + kw - x.shape[3] - 2 * pw)",
        "extra_w = max(0, (ow - 1) * sw + kw - x.shape[3] - 2 * ph)"),
    "avg-pool-divisor-height-squared": ("src/fastconv/nn.py",
        "1.0 / (self.kernel_size[0] * self.kernel_size[1])",
        "1.0 / (self.kernel_size[0] * self.kernel_size[0])"),
}

# Mutants that can only raise, never return a wrong value, so "raised" is the
# best any test can do: a full-size path for a kernel only as tall as the input
# hands the GEMM operands whose shapes disagree; too little extra right padding
# makes the pooling taps' views disagree in shape (too much is never read).
LOUD_ONLY = {"full-size-height-only", "pool-extra-width-uses-height-padding"}


def copy_tree(dest: Path):
    for part in ("src", "tests", "benchmarks", "pyproject.toml"):
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / part)


def apply(tree: Path, file: str, old: str, new: str) -> str:
    path = tree / file
    text = path.read_text()
    if text.count(old) != 1:
        raise SystemExit(f"{file}: the text to mutate occurs {text.count(old)} times: {old!r}")
    path.write_text(text.replace(old, new))
    return text


def run(tree: Path, tests, report: Path) -> dict:
    # One Numba cache for every mutant: the kernels compile once per run.
    env = dict(os.environ, PYTHONPATH=str(tree / "src"), NUMBA_CACHE_DIR=str(tree / "numba-cache"))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=no",
           "--maxfail=200", f"--junitxml={report}", *tests]
    subprocess.run(cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wrong, raised = [], []
    for case in ET.parse(report).iter("testcase"):
        for bad in list(case.iter("failure")) + list(case.iter("error")):
            msg = bad.get("message", "")
            name = f"{case.get('classname')}::{case.get('name')}"
            (raised if msg.startswith(("ValueError", "TypeError")) else wrong).append(name)
    return {"wrong": wrong, "raised": raised}


def main(argv):
    names, tests = argv, DEFAULT_TESTS
    if "--" in argv:
        i = argv.index("--")
        names, tests = argv[:i], argv[i + 1:]
    names = names or list(MUTANTS)
    survivors = []
    with tempfile.TemporaryDirectory(prefix="fastconv-mutants.") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        for name in names:
            file, old, new = MUTANTS[name]
            original = apply(tree, file, old, new)
            try:
                res = run(tree, tests, tree / "report.xml")
            finally:
                (tree / file).write_text(original)
            verdict = "killed" if res["wrong"] else "raised" if res["raised"] else "SURVIVED"
            if not (res["wrong"] or (res["raised"] and name in LOUD_ONLY)):
                survivors.append(name)
            first = (res["wrong"] or res["raised"] or [""])[0]
            print(f"{verdict:8} {name}: {len(res['wrong'])} wrong-value failures, "
                  f"{len(res['raised'])} ValueError/TypeError only  {first}", flush=True)
    print(f"{len(names) - len(survivors)} of {len(names)} mutants caught (on a wrong value, "
          f"or raising where nothing else is possible)"
          + (f"; not: {', '.join(survivors)}" if survivors else ""))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
