"""The command line's argument handling (the commands themselves are tested through their modules)."""

import pytest

from tf_qa import cli


@pytest.mark.parametrize("argv", [
    ["--questions", "3", "--skip-pipelines"],
    ["--questions", "3", "--output", "out", "--sweep-batching"],
    [],
])
def test_bench_receives_its_own_options(monkeypatch, argv):
    received = []
    monkeypatch.setattr("tf_qa.bench.main", lambda args: received.append(list(args)) or 0)
    assert cli.main(["bench", *argv]) == 0
    assert received == [argv]


def test_other_commands_refuse_unknown_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["validate", "some/path", "--questions", "3"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --questions 3" in capsys.readouterr().err
