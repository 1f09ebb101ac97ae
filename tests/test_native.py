"""The export in TensorFlow's C++ runtime (tf_qa/saved_model/native.py), as tensorflow_model_server runs it.

The runner is built with the machine's g++ on first use (cached); CI has g++, so these tests never skip.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SQUAD_V1, squad_pairs
from parity import REQUIRED_AGREEMENT, compare, in_batches
from texts import long_context_cases, non_ascii_cases

from tf_qa.errors import graph_error_message
from tf_qa.saved_model.answerer import NativeAnswerer
from tf_qa.saved_model.native import NativeError, NativeSession, NativeUnavailable, runner_binary
from tf_qa.saved_model.session import load_session, run_predict_request
from tf_qa.saved_model.validate import output_difference
from tf_qa.saved_model.warmup import make_request


@pytest.fixture(scope="module")
def native_answerer(saved_model_dir):
    with NativeAnswerer(saved_model_dir) as answerer:
        yield answerer


@pytest.fixture(scope="module")
def native(native_answerer):
    return native_answerer.session


@pytest.mark.parametrize("top_k,handle", [(1, False), (3, True)])
def test_native_answers_equal_the_pipeline(native_answerer, pipe, hf_tokenizer, top_k, handle):
    sets = {"non-ASCII": non_ascii_cases(), "long contexts": long_context_cases(hf_tokenizer)}
    if SQUAD_V1.exists():
        sets["squad-v1.1[:200]"] = squad_pairs(SQUAD_V1, 200)
    answer_fn = in_batches(native_answerer.answer_batch, batch_size=16)
    for name, cases in sets.items():
        counts = compare(
            pipe, answer_fn, [q for q, _ in cases], [c for _, c in cases], top_k=top_k, handle_impossible_answer=handle
        )
        print(counts.summary(f"native C++ runtime {name} top_k={top_k} handle_impossible_answer={handle}"))
        assert counts.total == len(cases)
        assert counts.agreement >= REQUIRED_AGREEMENT, counts.summary(name)


def test_every_signature_equals_the_python_session(native, saved_model_dir):
    from tf_qa.saved_model.warmup import warmup_requests

    session, signatures = load_session(saved_model_dir)
    try:
        for request in warmup_requests("tiny-qa"):
            python = run_predict_request(session, signatures, request)
            ours, seconds = native.run_tensor_protos(request.model_spec.signature_name, request.inputs)
            assert output_difference(python, ours) <= 1e-5 and seconds > 0, request.model_spec.signature_name
    finally:
        session.close()


def test_a_bad_row_is_invalid_argument_naming_it(native):
    inputs = {"question": np.array([b"Who?", b""], dtype=object), "context": np.array([b"Ada.", b"Ada."], dtype=object)}
    with pytest.raises(NativeError) as caught:
        native.run("serving_default", inputs)
    assert caught.value.code.name == "INVALID_ARGUMENT"
    assert (
        graph_error_message(caught.value.message)
        == "[question is empty or whitespace-only (no tokens) at batch index] [1]"
    )
    outputs, _ = native.run("serving_default", {k: v[:1] for k, v in inputs.items()})  # still serving
    assert outputs["answer"].shape == (1,)


@pytest.mark.parametrize(
    "signature,inputs,message",
    [
        ("nope", {}, "no signature nope"),
        ("serving_default", {"questions": np.array([b"x"], dtype=object)}, "no input questions"),
        ("serving_default", {"question": np.array([1.0], np.float32)}, "float"),
    ],
)
def test_wrong_requests_are_refused(native, signature, inputs, message):
    with pytest.raises(NativeError, match=message):
        native.run(signature, inputs)


def test_a_request_past_its_timeout_stops_the_runner(saved_model_dir):
    question = {"question": np.array([b"Who?"], dtype=object), "context": np.array([b"Ada wrote it."], dtype=object)}
    with NativeSession(saved_model_dir) as session:
        session.timeout = 1e-4
        with pytest.raises(NativeError, match="took over 0.0001 s") as caught:
            session.run("serving_default", question)
        assert caught.value.code.name == "DEADLINE_EXCEEDED"
        with pytest.raises(NativeError, match="not running|stopped"):
            session.run("serving_default", question)


def test_a_folder_without_a_model_is_refused_at_load(tmp_path):
    with pytest.raises(NativeError, match="NOT_FOUND|SavedModel"):
        NativeSession(tmp_path)


def test_no_compiler_says_so(monkeypatch, saved_model_dir):
    from tf_qa.saved_model.validate import ValidationReport, _check_native

    monkeypatch.setenv("CXX", "no-such-compiler")
    with pytest.raises(NativeUnavailable, match="no C.. compiler .no-such-compiler."):
        runner_binary()
    report = ValidationReport()
    _check_native(saved_model_dir, None, [], [], [], report)
    assert report.ok and report.lines == [
        "native: skipped: no C++ compiler (no-such-compiler) on PATH; install g++ or set CXX"
    ]


def test_a_failed_build_says_what_the_compiler_said(monkeypatch, tmp_path):
    compiler = tmp_path / "broken-g++"
    compiler.write_text("#!/bin/sh\necho 'fatal error: no headers here' >&2\nexit 1\n")
    compiler.chmod(0o755)
    monkeypatch.setenv("CXX", str(compiler))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(
        NativeUnavailable, match=r"building the native runner failed \(broken-g\+\+\): fatal error: no headers"
    ):
        runner_binary()
    assert not list((tmp_path / "cache").rglob("*native_runner*"))  # nothing half-built is left to be taken


@pytest.mark.parametrize(
    "native_output,problem",
    [
        ({"score": np.array([0.5], np.float32)}, "outputs"),
        ({"score": np.array([0.5, 0.5], np.float32), "answer": np.array([b"a"], dtype=object)}, "shape"),
        ({"score": np.array([0.5 + 1e-4], np.float32), "answer": np.array([b"a"], dtype=object)}, "differs by"),
        ({"score": np.array([0.5], np.float32), "answer": np.array([b"b"], dtype=object)}, "'answer' differs"),
    ],
)
def test_the_comparison_finds_each_difference(native_output, problem):
    python = {"score": np.array([0.5], np.float32), "answer": np.array([b"a"], dtype=object)}
    assert output_difference(python, dict(python)) == 0.0
    assert problem in output_difference(python, native_output)


def test_make_request_round_trips_through_the_runner(native):
    request = make_request(
        "tiny-qa",
        "serving_default",
        {"question": np.array([b"Who?"], dtype=object), "context": np.array([b"Ada wrote it."], dtype=object)},
    )
    outputs, _ = native.run_tensor_protos("serving_default", request.inputs)
    assert outputs["answer"][0].decode() in "Ada wrote it."
