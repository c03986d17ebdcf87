"""Benchmark harness: suites of real layers and GEMMs as data, a runner that
times fastconv next to its peers, machine limits, and reports (text,
Markdown, JSON, PNG).  The command line is `python -m fastconv bench`."""
from .suites import SUITES, ConvLayer, GemmShape, suite  # noqa: F401
