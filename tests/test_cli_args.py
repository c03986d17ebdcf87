"""The CLI checks its arguments and output paths before doing any work, and
writes nothing it was not asked to."""
import os
import sys

import pytest

from fastconv import __main__ as cli
from fastconv import demo
from fastconv.bench import machine, runner


@pytest.fixture
def no_work(monkeypatch):
    """Make every stage of demo, info and bench fail the test if it starts."""
    def refuse(*args, **kwargs):
        raise AssertionError("work started before the arguments were checked")
    for module, names in ((demo, ("fc6_section", "sparse_section", "lenet_section")),
                          (machine, ("describe", "fma_peak", "read_bandwidth")),
                          (runner, ("run_entry",))):
        for name in names:
            monkeypatch.setattr(module, name, refuse)


def usage_error(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(list(argv))
    assert exc.value.code == 2
    return capsys.readouterr().err


BAD = [  # (argv, words in the error)
    (["demo", "--threads", "0"], ["--threads", "positive", "'0'"]),
    (["demo", "--threads", "-3"], ["--threads", "positive"]),
    (["demo", "--repeats", "0"], ["--repeats"]),
    (["demo", "--budget", "nan"], ["--budget", "seconds >= 0"]),
    (["demo", "--png", "/nonexistent/x.png"], ["--png", "/nonexistent", "does not exist"]),
    (["info", "--threads", "0"], ["--threads", "positive"]),
    (["bench", "--json", "/nonexistent/r.json"], ["--json", "does not exist"]),
    (["bench", "--markdown", "/nonexistent/r.md"], ["--markdown", "does not exist"]),
    (["bench", "--plot", "/nonexistent/r.png"], ["--plot", "does not exist"]),
    (["bench", "--rounds", "0"], ["--rounds", "positive"]),
    (["bench", "--seconds", "-1"], ["--seconds", "seconds >= 0"]),
]


@pytest.mark.parametrize("argv,words", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_arguments_fail_before_any_work(capsys, no_work, argv, words):
    err = usage_error(capsys, *argv)
    for word in words:
        assert word in err, (word, err)
    assert "Traceback" not in err


def test_an_output_path_that_is_a_directory_is_refused(capsys, no_work, tmp_path):
    assert "is a directory" in usage_error(capsys, "demo", "--png", str(tmp_path))


@pytest.mark.slow
def test_demo_writes_no_file_unless_asked(capsys, monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    monkeypatch.setattr(demo, "fc6_section", lambda *a: None)   # VGG-16's 411 MB fc6
    monkeypatch.setattr(demo, "sparse_section", lambda: None)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["demo", "--repeats", "1", "--budget", "0.01"]) == 0
    assert os.listdir(tmp_path) == []
    assert "--png FILE" in capsys.readouterr().out
    assert cli.main(["demo", "--repeats", "1", "--budget", "0.01", "--png", "heat.png"]) == 0
    assert os.listdir(tmp_path) == ["heat.png"]


def test_demo_png_without_matplotlib_fails_at_once(capsys, no_work, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)    # importing it now fails
    err = usage_error(capsys, "demo", "--png", str(tmp_path / "heat.png"))
    assert "matplotlib" in err and os.listdir(tmp_path) == []
