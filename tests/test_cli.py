"""The command line's argument handling (the commands themselves are tested through their modules)."""

import subprocess
import sys
from pathlib import Path

import pytest

from tf_qa import cli

BENCH_SCRIPT = Path(cli.__file__).resolve().parents[1] / "benchmarks" / "bench.py"


@pytest.mark.parametrize(
    "argv",
    [
        ["--questions", "3", "--skip-pipelines"],
        ["--questions", "3", "--output", "out", "--sweep-batching"],
        [],
    ],
)
def test_bench_receives_its_own_options(monkeypatch, argv):
    received = []
    monkeypatch.setattr("subprocess.call", lambda command: received.append(command[1:]) or 0)
    assert cli.main(["bench", *argv]) == 0
    assert received == [[str(BENCH_SCRIPT), *argv]]


def test_bench_script_parses_its_options():
    run = subprocess.run([sys.executable, str(BENCH_SCRIPT), "--questions", "-5"], capture_output=True, text=True)
    assert run.returncode == 2 and "argument --questions: must be at least 1; got -5" in run.stderr, run.stderr


def test_other_commands_refuse_unknown_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["validate", "some/path", "--questions", "3"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --questions 3" in capsys.readouterr().err
