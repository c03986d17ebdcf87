"""Shared pytest configuration: hypothesis profiles.

Property tests run under a fixed example budget so CI time is bounded and
every run tries the same examples:

  ci (default)  derandomized: the examples are a pure function of the test, so
                a CI failure recurs on every rerun of that test.  Hypothesis
                prints the falsifying example (including the data seed it
                drew) and a ``@reproduce_failure(...)`` blob that replays it.
  explore       random seeds and many more examples, for hunting bugs locally.
                A failure prints ``--hypothesis-seed=N``/``@seed(N)`` or a
                ``@reproduce_failure`` blob; rerun with that seed to reproduce.
  sanitize      a small budget for the slow sanitizer build (.ci/sanitize).

Choose one with FASTCONV_HYPOTHESIS_PROFILE=<name> or pytest's
``--hypothesis-profile=<name>``.  To reproduce a failure:

  PYTHONPATH=src python -m pytest 'tests/test_properties.py::test_conv2d[c]'
  PYTHONPATH=src python -m pytest tests/test_properties.py \
      --hypothesis-profile=explore --hypothesis-seed=N
"""
import os

import isas
import pytest

from hypothesis import HealthCheck, settings

_common = dict(deadline=None, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=60, derandomize=True, **_common)
settings.register_profile("explore", max_examples=1000, derandomize=False, **_common)
settings.register_profile("sanitize", max_examples=15, derandomize=True, **_common)
settings.load_profile(os.environ.get("FASTCONV_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(params=isas.c_isas())
def isa(request):
    """Run the test once per C kernel ISA this CPU supports."""
    with isas.using_isa(request.param):
        yield request.param
