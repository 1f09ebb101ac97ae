"""The command line's argument handling (the commands themselves are tested through their modules)."""

import subprocess
import sys
from pathlib import Path

import pytest
from grpc import StatusCode

from tf_qa import cli, errors

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


def _serving_options(*extra):
    """``session_and_batching`` of the ServeOptions that ``tf-qa serve`` makes of its flags and ``extra``."""
    from tf_qa.arguments import build_parser
    from tf_qa.server.model_server import session_and_batching
    from tf_qa.server.options import ServeOptions

    args = build_parser("tf-qa").parse_args(["serve", "--model-base-path", "m", "--model-name", "m", *extra])
    return session_and_batching(ServeOptions.from_namespace(args))


def test_serve_takes_the_kits_platform_config():
    from tensorflow.core.protobuf import rewriter_config_pb2

    session_config, batching = _serving_options()
    assert batching is None
    assert session_config.graph_options.rewrite_options.function_optimization == rewriter_config_pb2.RewriterConfig.OFF
    _, batching = _serving_options("--enable-batching")
    assert batching == {"max_batch_size": 16, "timeout": 0.0, "num_threads": 2}


def test_serve_batching_flags_override_the_platform_config(tmp_path):
    config = tmp_path / "platform_config.pbtxt"
    config.write_text(
        "platform_configs { key: 'tensorflow' value { source_adapter_config { "
        "[type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig] { legacy_config { "
        "session_config { intra_op_parallelism_threads: 1 } "
        "batching_parameters { max_batch_size { value: 8 } batch_timeout_micros { value: 5000 } } } } } } }"
    )
    session_config, batching = _serving_options("--platform-config-file", str(config), "--enable-batching")
    assert session_config.intra_op_parallelism_threads == 1
    assert batching == {"max_batch_size": 8, "timeout": 0.005, "num_threads": 2}  # unset in the file: tf-qa's 2
    flags = ("--enable-batching", "--batch-timeout-micros", "0", "--max-batch-size", "4")
    _, batching = _serving_options("--platform-config-file", str(config), *flags)
    assert batching == {"max_batch_size": 4, "timeout": 0.0, "num_threads": 2}


def test_serve_refuses_a_broken_platform_config(tmp_path, capsys):
    config = tmp_path / "platform_config.pbtxt"
    config.write_text("platform_configs { key: 'tensorflow' value { source_adapter_config { typo: 1 } } }")
    assert (
        cli.main(["serve", "--model-base-path", "m", "--model-name", "m", "--platform-config-file", str(config)]) == 2
    )
    err = capsys.readouterr().err
    assert str(config) in err and "typo" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "flags,code,message",
    [
        (["--ssl-cert", "cert.pem"], 2, "--ssl-cert and --ssl-key go together"),
        (["--ssl-cert", "/nonexistent/cert.pem", "--ssl-key", "/nonexistent/key.pem"], 1, "cannot read --ssl-key"),
    ],
)
def test_serve_refuses_bad_tls_options_in_one_line(flags, code, message, capsys):
    assert cli.main(["serve", "--model-base-path", "m", "--model-name", "m", *flags]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "error,exit_code",
    [
        (errors.UsageError("refused: a flag"), 2),  # as argparse's usage errors
        (errors.error_for(StatusCode.CANCELLED, "refused: interrupted"), 130),
        (errors.error_for(StatusCode.INVALID_ARGUMENT, "refused by the server"), 1),
        (errors.error_for(StatusCode.NOT_FOUND, "refused: no such file"), 1),
        (errors.error_for(StatusCode.UNAVAILABLE, "refused: no server"), 1),
        (errors.error_for(StatusCode.RESOURCE_EXHAUSTED, "refused: busy"), 1),
        (errors.error_for(StatusCode.FAILED_PRECONDITION, "refused: cannot export"), 1),
        (errors.error_for(StatusCode.INTERNAL, "refused: a bug"), 1),
    ],
)
def test_every_error_exits_by_its_kind_and_status_code_in_one_line(error, exit_code, monkeypatch, capsys):
    def refuse(args):
        raise error

    monkeypatch.setitem(cli.COMMANDS, "validate", refuse)
    assert cli.main(["validate", "somewhere"]) == exit_code
    assert capsys.readouterr().err == f"tf-qa validate: {error}\n"


def test_version_names_tf_qa_and_the_libraries_it_runs_with():
    from importlib import metadata

    done = subprocess.run([sys.executable, "-m", "tf_qa.cli", "--version"], capture_output=True, text=True)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and lines[0].startswith("tf-qa "), done
    assert f"tensorflow {metadata.version('tensorflow')}" in lines
    assert f"transformers {metadata.version('transformers')}" in lines
