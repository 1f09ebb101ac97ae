"""The command line prints tf-qa's own lines only; ``--verbose`` lets the libraries' messages through."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tf_qa.console import _CPP_LOG_LINE

NOISE = ("port.cc", "cudart_stub", "cuda_platform", "absl::InitializeLog", "WARNING:tensorflow", "deprecated")


@pytest.mark.parametrize(
    "line,dropped",
    [
        (b"I0000 00:00:1795754579.616074   15195 port.cc:153] oneDNN custom operations are on.\n", True),
        (b"E0000 00:00:1795754515.210284   14773 cuda_platform.cc:52] failed call to cuInit\n", True),
        (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n", True),
        (b"F0000 00:00:1795754515.210284   14773 check.cc:1] a fatal error still shows\n", False),
        (b"tf-qa export: cannot load checkpoint 'x'\n", False),
        (b"[load] done in 0.1s\n", False),
    ],
)
def test_cpp_log_lines_are_recognised(line, dropped):
    assert bool(_CPP_LOG_LINE.match(line)) == dropped


def _validate(version_dir, *flags) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, "-m", "tf_qa.cli", "validate", str(version_dir), *flags],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, (done.stdout + done.stderr).splitlines()


def test_validate_passes_an_export_printing_only_tf_qa_lines(tiny_repository):
    code, lines = _validate(tiny_repository / "1")
    assert code == 0 and lines[-1] == "fits TensorFlow Serving", lines
    assert any("FastWordpieceTokenizeWithOffsets" in line for line in lines), lines
    assert [line for line in lines if any(noise in line for noise in NOISE)] == []
    assert len(lines) < 15


def test_the_libraries_messages_with_verbose(tmp_path):
    import tensorflow as tf

    # Any SavedModel makes TensorFlow speak; a small one loads fast.
    module = tf.Module()
    module.double = tf.function(lambda x: {"y": 2 * x}, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "1"), signatures={"serving_default": module.double})
    code, verbose = _validate(tmp_path / "1", "--verbose")
    assert code == 0 and any(noise in line for line in verbose for noise in NOISE), verbose
