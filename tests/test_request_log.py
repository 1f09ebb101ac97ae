"""Request logs (tf_qa/server/request_log.py): a model config's logging_config makes tf-qa serve write TF Serving's
PredictionLog records, rotated by size; a folder that cannot be written never fails a request; tf-qa batch and
tf-qa compare read the logs back."""

from __future__ import annotations

import json
import logging
import time
import urllib.request

import pytest

from tf_qa import errors
from tf_qa.cli import main
from tf_qa.client import QAClient
from tf_qa.questions import request_log_questions
from tf_qa.saved_model.warmup import read_prediction_logs
from tf_qa.server.metrics import ServerMetrics
from tf_qa.server.model_server import ModelServer
from tf_qa.server.options import ServeOptions
from tf_qa.server.request_log import RequestLogger
from tf_qa.tensors import make_ndarray
from tf_qa.tracing import checked_traceparent, new_traceparent


def _config(base_path, prefix, rate: float = 1.0) -> str:
    return (
        f'model_config_list {{ config {{ name: "qa" base_path: "{base_path}" model_platform: "tensorflow"\n'
        f'  logging_config {{ log_collector_config {{ filename_prefix: "{prefix}" }}\n'
        f"    sampling_config {{ sampling_rate: {rate} }} }} }} }}\n"
    )


def _serve(tiny_repository, config_path):
    options = ServeOptions(model_config_file=str(config_path), port=0, poll_seconds=0, rest_api_port=0)
    return ModelServer(options).start()


def _wait_for(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def _records(server) -> float:
    scraped = server.metrics.request_log_records.labels("qa")._value.get()
    return scraped


TRACEPARENT = new_traceparent()


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def logged(tiny_repository, tmp_path_factory):
    """A server logging every request of model qa, asked 3 requests (4 questions; the first with a W3C trace
    context) and one it refuses (traced too); the log's prefix, the answers, the server's request log lines."""
    root = tmp_path_factory.mktemp("request-log")
    config = root / "models.config"
    config.write_text(_config(tiny_repository, root / "logs" / "qa"))
    server = _serve(tiny_repository, config)
    lines = _Lines()
    logging.getLogger("tf_qa.server.requests").addHandler(lines)
    with QAClient(f"127.0.0.1:{server.port}", "qa", timeout=60) as client:
        answers = [client.answer("Where does Ann live?", "Ann lives in Paris.", traceparent=TRACEPARENT)]
        answers += client.answer_batch(["Who?", "What?"], ["Bob did.", "A red box."])
        with pytest.raises(errors.InvalidRequest):
            client.answer("   ", "Ann lives in Paris.", traceparent=TRACEPARENT)
    body = json.dumps({"instances": [{"question": "Who wrote it?", "context": "Ada wrote it."}]}).encode()
    urllib.request.urlopen(
        urllib.request.Request(f"http://127.0.0.1:{server.rest_port}/v1/models/qa:predict", body), timeout=60
    ).read()
    assert _wait_for(lambda: _records(server) == 3), _records(server)
    server.stop(0)
    logging.getLogger("tf_qa.server.requests").removeHandler(lines)
    return root / "logs" / "qa", answers, lines.lines


def test_every_request_is_logged_with_its_response_as_tf_serving_defines_them(logged):
    prefix, answers, _ = logged
    files = sorted(prefix.parent.glob("qa-*.tfrecord"))
    assert [f.name for f in files] == ["qa-00000.tfrecord"]
    logs = read_prediction_logs(files[0])
    assert len(logs) == 3
    first = logs[0]
    assert first.log_metadata.model_spec.name == "qa" and first.log_metadata.sampling_config.sampling_rate == 1.0
    assert first.predict_log.request.model_spec.signature_name == "answer_top_k"
    assert make_ndarray(first.predict_log.request.inputs["question"]).tolist() == [b"Where does Ann live?"]
    logged_answer = make_ndarray(first.predict_log.response.outputs["answer"])[0, 0].decode()
    assert logged_answer == answers[0]["answer"]
    assert logs[2].predict_log.request.model_spec.signature_name == "serving_default"  # the REST request


def test_a_callers_trace_context_reaches_the_request_log_and_the_log_lines(logged):
    prefix, _, lines = logged
    logs = read_prediction_logs(sorted(prefix.parent.glob("qa-*.tfrecord"))[0])
    assert logs[0].log_metadata.request_origin == f"traceparent={TRACEPARENT}"
    assert logs[1].log_metadata.request_origin == ""  # sent without one
    refused = [line for line in lines if TRACEPARENT in line]
    assert len(refused) == 1 and "INVALID_ARGUMENT" in refused[0] and "question is empty" in refused[0], lines


@pytest.mark.parametrize("value", ["00-abc-def-01", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", "not a trace"])
def test_a_malformed_trace_context_is_refused_by_the_client_and_ignored_by_the_server(value):
    assert checked_traceparent(value) is None
    with QAClient("127.0.0.1:1", "qa") as client, pytest.raises(ValueError, match="not a W3C traceparent"):
        client.answer("Who?", "Bob did.", traceparent=value)


def test_compare_and_batch_read_the_log_back(logged, saved_model_dir, tmp_path, capsys):
    prefix, _, _ = logged
    questions = request_log_questions(str(prefix))
    assert [q.question for q in questions] == ["Where does Ann live?", "Who?", "What?", "Who wrote it?"]
    code = main(["compare", "--input", str(prefix), "--baseline", saved_model_dir, "--candidate", saved_model_dir])
    out = capsys.readouterr().out
    assert code == 0 and "on 4 questions" in out and "agreement 100.00% (4 of 4 answers identical)" in out, out
    output = tmp_path / "answers.jsonl"
    command = ["batch", "--input", str(prefix), "--output", str(output), "--saved-model", saved_model_dir]
    assert main([*command, "--", "--direct_num_workers=1"]) == 0
    answered = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(a["id"] for a in answered) == sorted(q.id for q in questions)


def test_files_rotate_by_size_and_none_is_lost(tmp_path):
    from tensorflow_serving.apis import predict_pb2

    logger = RequestLogger("qa", str(tmp_path / "qa"), 1.0, max_bytes=600)
    for number in range(12):
        request, response = predict_pb2.PredictRequest(), predict_pb2.PredictResponse()
        request.model_spec.name = response.model_spec.name = "qa"
        request.inputs["question"].string_val.append(f"question {number}".encode())
        logger.write(request, response)
    logger.close()
    files = sorted(tmp_path.glob("qa-*.tfrecord"))
    assert len(files) > 1
    read = [log.predict_log.request.inputs["question"].string_val[0] for f in files for log in read_prediction_logs(f)]
    assert read == [f"question {n}".encode() for n in range(12)]


def test_a_folder_that_cannot_be_written_drops_records_counts_them_and_answers(tiny_repository, tmp_path, caplog):
    (tmp_path / "not-a-folder").write_text("a file where the log folder should be")
    config = tmp_path / "models.config"
    config.write_text(_config(tiny_repository, tmp_path / "not-a-folder" / "qa"))
    server = _serve(tiny_repository, config)
    try:
        with caplog.at_level(logging.ERROR, logger="tf_qa.server.request_log"):
            with QAClient(f"127.0.0.1:{server.port}", "qa", timeout=60) as client:
                for _ in range(3):
                    assert client.answer("Where does Ann live?", "Ann lives in Paris.")["answer"]
            dropped = server.metrics.request_log_dropped.labels("qa", "write_error")
            assert _wait_for(lambda: dropped._value.get() == 3)
        assert len([r for r in caplog.records if "dropping records" in r.getMessage()]) == 1  # logged once
    finally:
        server.stop(0)


def test_sampling_rate_zero_logs_nothing(tmp_path):
    logger = RequestLogger("qa", str(tmp_path / "qa"), 0.0, ServerMetrics())
    assert not any(logger.sampled() for _ in range(1000))
    logger.close()
    with pytest.raises(ValueError, match="sampling_rate must be in"):
        RequestLogger("qa", str(tmp_path / "qa"), 1.5)
