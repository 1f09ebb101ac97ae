"""tf-qa serve protects itself: deadlines stop the work, requests in flight are bounded, REST refuses cleanly."""

from __future__ import annotations

import http.client
import json
import threading
import time
from contextlib import contextmanager

import grpc
import numpy as np
import pytest
import tensorflow as tf
from http_requests import post
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tf_qa import errors
from tf_qa.client import QAClient
from tf_qa.graph.limits import RequestLimits
from tf_qa.graph.options import ExportOptions
from tf_qa.server.admission import MAX_RETRY_AFTER, MIN_RETRY_AFTER
from tf_qa.server.model_server import ModelServer
from tf_qa.server.options import ServeOptions

NAME = "tiny-qa"


def serve_options(repository, **options) -> ServeOptions:
    """Options serving ``repository`` as ``NAME`` on a free port, without polling."""
    return ServeOptions(model_base_path=str(repository), model_name=NAME, port=0, poll_seconds=0, **options)


QUESTION, CONTEXT = "What is the capital of France?", "Paris is the capital and most populous city of France."
WORDS = "the river city north south museum opened century built bridge king queen army war treaty Paris ".split()


@pytest.fixture(scope="module")
def repository(checkpoint_dir, tmp_path_factory):
    """A SavedModel whose limits allow a request of several seconds' work (saved as is: no warmup needed here)."""
    from tf_qa.graph.model import QuestionAnsweringModel

    repo = tmp_path_factory.mktemp("limits") / NAME
    options = ExportOptions(limits=RequestLimits(max_text_bytes=8 << 20, max_windows=8192))
    QuestionAnsweringModel.from_pretrained(checkpoint_dir, options=options).save_for_serving(str(repo / "1"))
    return repo


@pytest.fixture(scope="module")
def server(repository):
    server = ModelServer(serve_options(repository, rest_api_port=0, max_request_bytes=1 << 20)).start()
    yield server
    server.stop(0)


def _heavy_context(n_bytes: int) -> str:
    rng = np.random.default_rng(0)
    return " ".join(rng.choice(WORDS, n_bytes // 5))[:n_bytes]


BATCHING = {"enable_batching": True, "max_batch_size": 16, "batch_timeout_micros": 0, "num_batch_threads": 2}


@pytest.mark.parametrize("batching", [{}, BATCHING], ids=["unbatched", "batching"])
def test_a_passed_deadline_stops_the_work(repository, batching):
    server = ModelServer(serve_options(repository, max_request_bytes=16 << 20, **batching)).start()
    heavy = _heavy_context(2_000_000)
    try:
        with QAClient(f"127.0.0.1:{server.port}", NAME, timeout=120, retries=0) as client:
            started = time.monotonic()
            client.answer(QUESTION, heavy)
            full = time.monotonic() - started
        with QAClient(f"127.0.0.1:{server.port}", NAME, timeout=0.2, retries=0) as client:
            with pytest.raises(errors.DeadlineExceeded):
                client.answer(QUESTION, heavy)
        cut = time.monotonic()
        while server.repository.requests_in_flight() and time.monotonic() - cut < full:
            time.sleep(0.005)
        stopped_after = time.monotonic() - cut
        with QAClient(f"127.0.0.1:{server.port}", NAME, timeout=30, retries=0) as client:
            started = time.monotonic()
            assert client.answer(QUESTION, CONTEXT)["answer"]
            next_latency = time.monotonic() - started
    finally:
        server.stop(0)
    print(
        f"full run {full:.2f}s; work stopped {stopped_after:.3f}s after the deadline; next request "
        f"{next_latency * 1000:.0f} ms"
    )
    # Without the run timeout the session would run on for the rest of the full run.
    assert stopped_after < full / 3
    assert next_latency < full / 3


@contextmanager
def _first_request_held(server: ModelServer):
    """Sends one short question and holds it in its run until the block ends; yields its answer (filled later)."""
    release, entered = threading.Event(), threading.Event()
    run = server.predictor.run

    def held_run(*args):
        entered.set()
        release.wait(30)
        return run(*args)

    server.predictor.run = held_run
    first = {}
    thread = threading.Thread(
        target=lambda: first.update(
            QAClient(f"127.0.0.1:{server.port}", NAME, timeout=60, retries=0).answer(QUESTION, CONTEXT)
        )
    )
    thread.start()
    try:
        assert entered.wait(30)
        yield first
    finally:
        release.set()
        thread.join(30)
        server.predictor.run = run


def _refused_over_rest(server: ModelServer, body: bytes, flag: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
    connection.request("POST", f"/v1/models/{NAME}:predict", body)
    response = connection.getresponse()
    answer = json.loads(response.read())
    assert response.status == 429 and flag in answer["error"]
    assert int(response.getheader("Retry-After")) >= 1 and answer["retry_after_ms"] >= 10


def test_requests_past_max_in_flight_are_refused_at_once(repository):
    server = ModelServer(serve_options(repository, rest_api_port=0, max_in_flight=1)).start()
    try:
        qa = QAClient(f"127.0.0.1:{server.port}", NAME, timeout=30, retries=0)
        with _first_request_held(server) as first:
            started = time.monotonic()
            with pytest.raises(errors.ResourceExhausted, match="RESOURCE_EXHAUSTED.*max-in-flight") as refused:
                qa.answer(QUESTION, CONTEXT)  # retries=0: raised at once, with when to come back
            assert time.monotonic() - started < 1.0
            assert MIN_RETRY_AFTER <= refused.value.retry_after <= MAX_RETRY_AFTER  # grpc-retry-pushback-ms
            _refused_over_rest(server, _instances(), "max-in-flight")
        assert first["answer"] and qa.answer(QUESTION, CONTEXT)["answer"]
    finally:
        qa.close()
        server.stop(0)


def test_admission_counts_windows_not_requests(repository):
    """With room for 8 windows, a short question joins the one in flight and a long document does not; alone, the
    long document runs (it is larger than the whole budget)."""
    server = ModelServer(serve_options(repository, rest_api_port=0, max_in_flight=8, max_windows_in_flight=8)).start()
    long_context = _heavy_context(20_000)  # about 20 windows, estimated from its bytes
    try:
        qa = QAClient(f"127.0.0.1:{server.port}", NAME, timeout=30, retries=0)
        with _first_request_held(server) as first:
            with pytest.raises(errors.ResourceExhausted, match="windows of work are in flight.*max-windows-in-flight"):
                qa.answer(QUESTION, long_context)
            _refused_over_rest(server, _instances(context=long_context), "max-windows-in-flight")
            joined = threading.Thread(target=lambda: first.update(second=qa.answer("Which city?", CONTEXT)))
            joined.start()
            deadline = time.monotonic() + 30
            while server.predictor.admission.windows_in_flight < 2 and time.monotonic() < deadline:
                time.sleep(0.005)
            assert server.predictor.admission.windows_in_flight == 2  # both short questions admitted
        joined.join(30)
        assert first["answer"] and first["second"]["answer"] and qa.answer(QUESTION, long_context)["answer"]
        refusals = server.metrics.refused.labels(NAME, "max_windows_in_flight")._value.get()
        assert refusals == 2
    finally:
        qa.close()
        server.stop(0)


def test_a_tensor_declaring_more_elements_than_a_request_can_carry(server):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = NAME
    for key in ("question", "context"):
        request.inputs[key].CopyFrom(tf.make_tensor_proto([b"x"]))
        request.inputs[key].tensor_shape.dim[0].size = 10**12  # one value, repeated: TensorProto allows it
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as error:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "declares 1000000000000 elements" in error.value.details()
    assert time.monotonic() - started < 1.0


def _post(port: int, body: bytes, headers: dict | None = None):
    return post(port, f"/v1/models/{NAME}:predict", body, headers)


def _instances(**fields) -> bytes:
    instance = {
        "question": QUESTION,
        "context": CONTEXT,
        "top_k": 1,
        "max_answer_len": 15,
        "handle_impossible_answer": False,
    }
    instance.update(fields)
    return json.dumps({"signature_name": "answer_top_k", "instances": [instance]}).encode()


@pytest.mark.parametrize(
    "body,headers,status,message",
    [
        (b"[" * 100_000, None, 400, "nested too deeply"),
        (b"\xff\xfe{}", None, 400, "not UTF-8"),
        (b"{not json", None, 400, "not JSON"),
        (b"[1, 2]", None, 400, "JSON object"),
        (b"", {"Content-Length": str(200 << 20)}, 413, "over the limit of 1048576 bytes"),
        (b"", {"Content-Length": "-5"}, 400, "Content-Length"),
        (b"", {"Content-Length": "many"}, 400, "Content-Length"),
        (b"", {"Transfer-Encoding": "chunked"}, 411, "Content-Length"),
        (_instances(top_k=1.5), None, 400, "expected int32"),
        (_instances(top_k="3"), None, 400, "expected int32"),
        (_instances(top_k=True), None, 400, "expected int32"),
        (_instances(top_k=2**40), None, 400, "outside the range of int32"),
        (_instances(handle_impossible_answer=1), None, 400, "expected bool"),
        (_instances(question=5), None, 400, "expected a string"),
        (_instances(question=["a", ["b"]]), None, 400, "not rectangular"),
        (_instances(context={"b64": "%%%"}), None, 400, "cannot read a string tensor"),
        (json.dumps({"signature_name": 5, "instances": []}).encode(), None, 400, "signature_name"),
        (json.dumps({"instances": {"question": "a"}}).encode(), None, 400, "non-empty list"),
        (
            json.dumps({"inputs": {"question": [["a", "b"], ["c"]], "context": ["x"]}}).encode(),
            None,
            400,
            "not rectangular",
        ),
    ],
)
def test_rest_refuses_bad_bodies_with_a_message(server, body, headers, status, message):
    got, reply = _post(server.rest_port, body, headers)
    assert (got, message in reply["error"]) == (status, True), reply
    # The server is still there and answers.
    assert _post(server.rest_port, _instances())[0] == 200
