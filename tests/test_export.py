"""tf-qa export: repository layout, warmup, metadata, atomic publish and clear errors."""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest

from tf_qa.cli import main
from tf_qa.graph.options import ExportOptions
from tf_qa.saved_model.export import check_output
from tf_qa.saved_model.layout import read_export_record, version_folders, warmup_file
from tf_qa.saved_model.session import run_requests
from tf_qa.saved_model.warmup import read_warmup


@pytest.fixture(scope="module")
def repository(tiny_repository):
    """Made by ``tf-qa export`` (see conftest.py); read-only."""
    return tiny_repository


def test_layout_warmup_and_metadata(repository):
    version = repository / "1"
    assert (version / "saved_model.pb").is_file() and (version / "variables").is_dir()
    assert (version / "assets" / "vocab.txt").read_text().splitlines()[101:103] == ["[CLS]", "[SEP]"]
    requests = read_warmup(warmup_file(version))
    signatures = {r.model_spec.signature_name for r in requests}
    assert signatures == {"serving_default", "answer_top_k", "token_spans"} and len(requests) <= 1000
    batch_sizes = {r.inputs[next(iter(r.inputs))].tensor_shape.dim[0].size for r in requests}
    assert batch_sizes == {1, 8}
    results = run_requests(version, requests)
    assert len(results) == len(requests)
    metadata = read_export_record(version)
    assert metadata["options"]["max_seq_len"] == 384 and "tensorflow_text" in metadata["versions"]
    assert ExportOptions.from_dict(metadata["options"]) == ExportOptions(max_seq_len=384)
    assert not [p for p in repository.iterdir() if p.name.startswith(".tmp")]


def test_the_functions_the_graph_calls_carry_the_platform_configs_rewrite_options(repository):
    """TensorFlow optimizes a called function with the options recorded in its call, not the session's."""
    from tensorflow.core.protobuf import config_pb2, saved_model_pb2

    from tf_qa.saved_model.platform_config import read_platform_config

    saved = saved_model_pb2.SavedModel.FromString((repository / "1" / "saved_model.pb").read_bytes())
    graph = saved.meta_graphs[0].graph_def
    calls = [node for node in graph.node if "config_proto" in node.attr]
    calls += [node for function in graph.library.function for node in function.node_def if "config_proto" in node.attr]
    recorded = [config_pb2.ConfigProto.FromString(node.attr["config_proto"].s).graph_options for node in calls]
    assert len(recorded) >= 3  # a call at least per signature
    wanted = read_platform_config().session_config.graph_options.rewrite_options
    assert all(options.rewrite_options == wanted for options in recorded)


def test_versions_increment_and_are_never_overwritten(repository, checkpoint_dir, capsys):
    assert main(["export", "--model", checkpoint_dir, "--output", str(repository), "--version", "1"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert version_folders(str(repository)) == [1]
    assert check_output(repository, None, force=False) == 2
    assert check_output(repository, 1, force=True) == 1


@pytest.mark.parametrize(
    "make_output,message",
    [
        (lambda tmp: (tmp / "file").write_text("x") and tmp / "file", "is not a folder"),
    ],
)
def test_bad_output(tmp_path, checkpoint_dir, capsys, make_output, message):
    assert main(["export", "--model", checkpoint_dir, "--output", str(make_output(tmp_path))]) == 1
    assert message in capsys.readouterr().err


def test_unknown_checkpoint_and_not_a_qa_model(tmp_path, capsys):
    from transformers import DistilBertConfig, TFDistilBertForSequenceClassification

    assert main(["export", "--model", str(tmp_path / "missing"), "--output", str(tmp_path / "out")]) == 1
    assert "cannot load checkpoint" in capsys.readouterr().err
    classifier = tmp_path / "classifier"
    model = TFDistilBertForSequenceClassification(DistilBertConfig(dim=32, hidden_dim=64, n_layers=1, n_heads=2))
    model(model.dummy_inputs)
    model.save_pretrained(classifier)
    assert main(["export", "--model", str(classifier), "--output", str(tmp_path / "out")]) == 1
    assert "not a question-answering model" in capsys.readouterr().err
    assert version_folders(str(tmp_path / "out")) == []


def test_killed_export_leaves_no_loadable_version(checkpoint_dir, tmp_path):
    repo = tmp_path / "repo"
    process = subprocess.Popen(
        [sys.executable, "-m", "tf_qa.cli", "export", "--model", checkpoint_dir, "--output", str(repo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # Once the model is built (its files are being staged), stop the export as a deployment system would.
    for line in process.stdout:
        if line.startswith("[build] done"):
            assert any(repo.glob(".tmp-*"))
            process.send_signal(signal.SIGTERM)
            break
    process.wait(timeout=120)
    assert process.returncode != 0
    assert version_folders(str(repo)) == []
    assert not [p for p in repo.iterdir() if p.name.startswith(".tmp")]


# tf-qa validate passing the export, as a user runs it: tests/test_console.py (one validation, for CI's time).


def _validate_model(path, serve, capsys) -> tuple[int, str]:
    """Saves ``serve`` (a function of a [None] float32 input) as a SavedModel and validates it."""
    import tensorflow as tf

    module = tf.Module()
    module.serve = tf.function(serve, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    code = main(["validate", str(path)])
    return code, capsys.readouterr().out


def test_validate_flags_an_op_tf_serving_lacks(tmp_path, capsys):
    import tensorflow as tf

    code, out = _validate_model(
        tmp_path / "1", lambda x: {"y": tf.py_function(lambda v: v * 2, [x], tf.float32)}, capsys
    )
    assert code == 1 and "EagerPyFunc" in out and "does NOT fit" in out


def test_validate_flags_unbatched_outputs(tmp_path, capsys):
    import tensorflow as tf

    code, out = _validate_model(tmp_path / "1", lambda x: {"total": tf.reduce_sum(x)}, capsys)
    assert code == 1 and "not batched along dim 0" in out


def test_unwritable_output_and_bert_style_models(tmp_path, checkpoint_dir, capsys):
    from transformers import BertConfig, TFBertForQuestionAnswering

    assert main(["export", "--model", checkpoint_dir, "--output", "/proc/tf-qa-cannot-write/model"]) == 1
    assert "cannot write to output folder" in capsys.readouterr().err
    bert = tmp_path / "bert"
    model = TFBertForQuestionAnswering(
        BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    )
    model(model.dummy_inputs)
    model.save_pretrained(bert)
    assert main(["export", "--model", str(bert), "--output", str(tmp_path / "out")]) == 1
    assert "token_type_ids, like BERT, are not supported" in capsys.readouterr().err


def _spans(score, start=3, end=5):
    return {"score": np.array([0.5, score], np.float32), "start": np.array([1, start]), "end": np.array([2, end])}


@pytest.mark.parametrize(
    "matmul_dtype,saved,problem",
    [
        ("float32", _spans(0.25 + 5e-5), None),
        ("float32", _spans(0.25 + 5e-4), "row 1: score 0.250500 instead of 0.250000 (difference 0.0005, tolerance"),
        # What a base-size bf16 export measured on Zen 4 (issue 15): within bf16's tolerance.
        ("bfloat16", _spans(0.25 + 0.0177), None),
        ("bfloat16", _spans(0.25 + 0.05), "tolerance 0.031 for bfloat16 matmuls"),
        ("bfloat16", _spans(0.25, start=4), "row 1: span (4, 5) instead of (3, 5)"),
        ("float32", _spans(0.25, end=6), "row 1: span (3, 6) instead of (3, 5)"),
    ],
)
def test_the_self_check_tolerance_follows_the_matmul_precision(matmul_dtype, saved, problem):
    from tf_qa.saved_model.export import span_differences

    problems = span_differences(saved, _spans(0.25), matmul_dtype)
    assert problems == [] if problem is None else problem in problems[0], problems


@pytest.mark.parametrize(
    "precision,flags,line",
    [
        (
            "bf16",
            "avx512f avx512_bf16",
            "bf16 export: this CPU multiplies bf16 natively: Test CPU (avx512f, avx512_bf16;",
        ),
        ("bf16", "amx_bf16 amx_int8", "bf16 export: this CPU multiplies bf16 natively"),
        ("bf16", "avx2 avx512f", "WARNING: bf16 export on a CPU without AVX512_BF16 or AMX (Test CPU (avx512f;"),
        (
            "int8",
            "avx512f avx512_vnni",
            "int8 export: this CPU multiplies int8 natively: Test CPU (avx512f, avx512_vnni;",
        ),
        ("int8", "amx_bf16 amx_int8", "int8 export: this CPU multiplies int8 natively"),
        ("int8", "avx2 avx512f avx512_bf16", "WARNING: int8 export on a CPU without AVX512_VNNI or AMX-INT8 (Test CPU"),
    ],
)
def test_validate_says_whether_the_cpu_multiplies_the_precision_natively(monkeypatch, precision, flags, line):
    from tf_qa.cpu import cpu_features
    from tf_qa.saved_model import validate

    monkeypatch.setattr(validate, "cpu_features", lambda: cpu_features(f"model name : Test CPU\nflags : {flags}\n"))
    report = validate.ValidationReport()
    validate._check_cpu(report, precision)
    assert report.ok and report.lines[0].startswith(line), report.lines


def test_validate_holds_a_tf_qa_export_to_the_signature_contract(tmp_path, capsys):
    """Any SavedModel may name its inputs as it likes; one with tf-qa's export record must state tf_qa.signatures."""
    from tf_qa.saved_model.layout import export_record_file

    code, out = _validate_model(tmp_path / "1", lambda x: {"y": 2 * x}, capsys)
    assert "tf_qa.signatures states" not in out, out
    export_record_file(tmp_path / "1").parent.mkdir()
    export_record_file(tmp_path / "1").write_text("{}", encoding="utf-8")
    code, out = _validate_model(tmp_path / "1", lambda x: {"y": 2 * x}, capsys)
    assert code == 1 and "serving_default: inputs ['x'], but tf_qa.signatures states ['context', 'question']" in out


def test_an_int8_export_calibrates_on_a_question_file_and_records_its_ranges(tmp_path, checkpoint_dir):
    from transformers import AutoConfig

    questions = tmp_path / "calibration.jsonl"
    lines = [
        f'{{"id": "{i}", "question": "who came?", "context": "{"They came to Paris. " * (i * 40 + 1)}"}}'
        for i in range(3)
    ]
    questions.write_text("\n".join(lines) + "\n")
    flags = ["--matmul-dtype", "int8", "--calibration", str(questions), "--calibration-questions", "2"]
    assert main(["export", "--model", checkpoint_dir, "--output", str(tmp_path / "out"), *flags]) == 0
    record = read_export_record(tmp_path / "out" / "1")
    options = ExportOptions.from_dict(record["options"])
    assert options.matmul_dtype == "int8" and options.window_length_multiple == 8
    assert options.parallel_branches == 2  # int8's default
    assert len(options.int8_ranges) == AutoConfig.from_pretrained(checkpoint_dir).n_layers * 2 * 4
    assert record["int8_calibration"] == f"2 questions of {questions}"


def test_an_int8_calibration_question_too_long_for_a_window_is_refused_by_name(tmp_path, checkpoint_dir, capsys):
    questions = tmp_path / "calibration.jsonl"
    questions.write_text('{"id": "q-long", "question": "' + "why " * 500 + '", "context": "They came."}\n')
    flags = ["--matmul-dtype", "int8", "--calibration", str(questions)]
    assert main(["export", "--model", checkpoint_dir, "--output", str(tmp_path / "out"), *flags]) == 1
    err = capsys.readouterr().err
    assert "calibration question 'q-long' cannot be cut into windows of 384 tokens" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "1").exists()
