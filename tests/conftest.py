"""Shared pytest configuration: hypothesis profiles and the ISA report.

Property tests run under a fixed example budget so CI time is bounded:

  dev (default) derandomized: the examples are a pure function of the test, so
                a failure recurs on every rerun of that test.  Hypothesis
                prints the falsifying example (including the data seed it
                drew) and a ``@reproduce_failure(...)`` blob that replays it.
  ci            (the default when CI=true) a fresh random seed every run, so
                CI keeps exploring; pytest's header and summary print
                it ("hypothesis seed N") and ``--hypothesis-seed=N`` replays the run.
  explore       random seeds and many more examples, for hunting bugs locally.
                A failure prints ``--hypothesis-seed=N``/``@seed(N)`` or a
                ``@reproduce_failure`` blob; rerun with that seed to reproduce.
  sanitize      a small budget for the slow sanitizer build (.ci/sanitize).
  quick         derandomized, 20 examples: README's quick tier (-m "not slow");
                the full suite keeps dev's or ci's budget.

Choose one with FASTCONV_HYPOTHESIS_PROFILE=<name> or pytest's
``--hypothesis-profile=<name>``.  To reproduce a failure:

  PYTHONPATH=src python -m pytest 'tests/test_properties.py::test_conv2d[c]'
  PYTHONPATH=src python -m pytest tests/test_properties.py \
      --hypothesis-profile=explore --hypothesis-seed=N

The terminal summary names the ISAs whose C kernels ran; under CI=true the
run fails if this CPU supports an ISA (per the C core's CPUID) that did not run.
"""
import os
import random

import isas
import pytest

from hypothesis import HealthCheck, settings

IN_CI = os.environ.get("CI", "").lower() in ("true", "1")
_common = dict(deadline=None, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=60, derandomize=True, **_common)
settings.register_profile("ci", max_examples=60, derandomize=False, **_common)
settings.register_profile("explore", max_examples=1000, derandomize=False, **_common)
settings.register_profile("sanitize", max_examples=15, derandomize=True, **_common)
settings.register_profile("quick", max_examples=20, derandomize=True, **_common)
settings.load_profile(os.environ.get("FASTCONV_HYPOTHESIS_PROFILE", "ci" if IN_CI else "dev"))


@pytest.fixture(params=isas.c_isas())
def isa(request):
    """Run the test once per C kernel ISA this CPU supports."""
    with isas.using_isa(request.param):
        yield request.param


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # A random run seed, chosen here so that it can be printed and replayed.
    if not settings.default.derandomize and config.getoption("hypothesis_seed") is None:
        config.option.hypothesis_seed = str(random.randrange(2**32))


def _seed_line(config):
    seed = config.getoption("hypothesis_seed")
    return None if seed is None else f"hypothesis seed {seed} (replay: --hypothesis-seed={seed})"


def pytest_report_header(config):
    return _seed_line(config)


def pytest_sessionstart(session):
    try:
        isas.track()
    except ImportError:  # no compiled C core: nothing to track
        pass


def pytest_sessionfinish(session, exitstatus):
    if IN_CI and session.testscollected and exitstatus == 0 and \
            not session.config.option.collectonly:
        if isas.report()[1]:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config):
    if _seed_line(config):  # again here: -q drops the header
        terminalreporter.write_line(_seed_line(config))
    try:
        ran, missing, lacks = isas.report()
    except ImportError:
        return
    line = f"C kernels ran on: {', '.join(ran) or 'none'}"
    line += f"; CPU lacks: {', '.join(lacks)}" if lacks else ""
    terminalreporter.write_line(line)
    if missing:
        terminalreporter.write_line(f"supported by this CPU but never run: {', '.join(missing)}"
                                    + (" (CI: the run fails)" if IN_CI else ""),
                                    red=IN_CI, yellow=not IN_CI)
