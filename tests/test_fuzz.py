"""Hostile and malformed requests against ``tf-qa serve`` over gRPC and REST: the server answers every one.

The requests come from a seeded generator: random bytes as text, random shapes and dtypes, options out of range,
random JSON, and sizes just past each limit. After each, the server must still be up; every request must get a
status (never a dropped connection, INTERNAL/UNKNOWN or HTTP 500); and at the end a good request gets the same
answer as before and the server's memory has grown by a bounded amount.
"""

from __future__ import annotations

import base64
import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from http_requests import post
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tf_qa.graph.limits import RequestLimits
from tf_qa.saved_model.layout import version_folders
from tf_qa.server.options import DEFAULT_MAX_REQUEST_BYTES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from served import status_mb  # the reliability scripts' reader of /proc/PID/status

SEED = 20261127
NAME = "tiny-qa"
LIMITS = RequestLimits()
QUESTION, CONTEXT = "What is the capital of France?", "Paris is the capital and most populous city of France."
#: RSS the server may gain over the whole run (allocator caches of the largest requests, not leaks).
RSS_GROWTH_BOUND_MB = 400
#: Two version swaps; before unloading returned memory, each swap of this model kept about 90 MB.
SWAPS_GROWTH_BOUND_MB = 120
GRPC_ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
REST_ALLOWED = {200, 400, 404, 411, 413}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def repository(tiny_repository, tmp_path_factory):
    """A copy of the export that the tests may publish new versions into."""
    repository = tmp_path_factory.mktemp("fuzz") / NAME
    shutil.copytree(tiny_repository / "1", repository / "1")
    return repository


@pytest.fixture(scope="module")
def served(repository):
    grpc_port, rest_port = _free_port(), _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tf_qa.cli",
            "serve",
            "--model-base-path",
            str(repository),
            "--model-name",
            NAME,
            "--port",
            str(grpc_port),
            "--rest-api-port",
            str(rest_port),
            "--poll-seconds",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout.readline().startswith(f"serving {NAME}")
        with grpc.insecure_channel(
            f"127.0.0.1:{grpc_port}", options=[("grpc.max_send_message_length", 64 << 20)]
        ) as channel:
            yield process, channel, rest_port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


# ---------------------------------------------------------------- gRPC requests
def _random_bytes(rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120)))
    ranges = [(32, 127), (0x80, 0xD800), (0xE000, 0x110000)]  # every code point but the surrogates
    return "".join(chr(rng.randrange(*rng.choice(ranges))) for _ in range(rng.randrange(1, 80))).encode("utf-8")


def _request(signature: str = "serving_default", model: str = NAME, **inputs) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(
            value if isinstance(value, type(request.inputs[key])) else tf.make_tensor_proto(value)
        )
    return request


def _texts(values) -> np.ndarray:
    return np.array(values, dtype=object)


def _top_k_request(n: int, *, top_k=1, max_answer_len=15, contexts=None, sizes=None) -> predict_pb2.PredictRequest:
    sizes = sizes or [n] * 5
    return _request(
        "answer_top_k",
        question=_texts([QUESTION.encode()] * sizes[0]),
        context=_texts(contexts or [CONTEXT.encode()] * sizes[1]),
        top_k=np.full([sizes[2]], top_k, np.int32),
        max_answer_len=np.full([sizes[3]], max_answer_len, np.int32),
        handle_impossible_answer=np.zeros([sizes[4]], bool),
    )


def _windows_past_the_limit() -> bytes:
    """A context that makes ``max_windows + 1`` windows with the question ``q?`` (2 tokens): room 379, step 251."""
    tokens = 379 + (LIMITS.max_windows - 1) * 251 + 1
    return b"a " * tokens


def _grpc_cases(rng: random.Random) -> list[tuple[str, object]]:
    huge = _request(question=_texts([b"x"]), context=_texts([b"x"]))
    huge.inputs["context"].tensor_shape.dim[0].size = rng.randrange(10**9, 10**13)
    cases = [
        ("past max_examples", _top_k_request(LIMITS.max_examples + 1)),
        (
            "past max_text_bytes",
            _request(question=_texts([b"q?"]), context=_texts([b"a" * (LIMITS.max_text_bytes - 1)])),
        ),
        ("past max_windows", _request(question=_texts([b"q?"]), context=_texts([_windows_past_the_limit()]))),
        ("past max_top_k", _top_k_request(1, top_k=LIMITS.max_top_k + 1)),
        ("top_k 2^31-1", _top_k_request(1, top_k=2**31 - 1)),
        (
            "token_spans past max_windows",
            _request(
                "token_spans",
                input_ids=np.full([LIMITS.max_windows + 1, 4], 101, np.int32),
                attention_mask=np.ones([LIMITS.max_windows + 1, 4], np.int32),
            ),
        ),
        (
            "token_spans past positions",
            _request(
                "token_spans", input_ids=np.full([1, 513], 101, np.int32), attention_mask=np.ones([1, 513], np.int32)
            ),
        ),
        ("declared huge shape", huge),
        (
            "message past max_request_bytes",
            _request(question=_texts([b"q"]), context=_texts([b"a" * (DEFAULT_MAX_REQUEST_BYTES + 1)])),
        ),
        ("empty batch", _request(question=_texts([]), context=_texts([]))),
        ("unknown model", _request(model="nope", question=_texts([b"q"]), context=_texts([b"c"]))),
        ("unknown signature", _request("nope", question=_texts([b"q"]), context=_texts([b"c"]))),
    ]
    return cases + [_random_grpc_case(rng, i % 6) for i in range(24)]


def _random_grpc_case(rng: random.Random, kind: int) -> tuple[str, object]:
    """A seeded random request of one kind: bytes, shape, dtype, options, batch sizes or token_spans."""
    n = rng.randrange(1, 5)
    if kind == 0:
        request = _request(
            question=_texts([_random_bytes(rng) for _ in range(n)]),
            context=_texts([_random_bytes(rng) for _ in range(n)]),
        )
    elif kind == 1:
        shape = rng.choice([[], [n, 2], [1, 1, n]])
        request = _request(question=_texts(np.full(shape, b"q?", object)), context=_texts([CONTEXT.encode()]))
    elif kind == 2:
        dtype = rng.choice([np.int32, np.float32, bool, np.int64])
        request = _request(question=np.zeros([n], dtype), context=_texts([CONTEXT.encode()] * n))
    elif kind == 3:
        request = _top_k_request(
            n,
            top_k=rng.choice([0, -1, -(2**31), LIMITS.max_top_k + rng.randrange(1, 10**6)]),
            max_answer_len=rng.choice([0, -5, 15, 2**31 - 1]),
        )
    elif kind == 4:
        sizes = [n] * 5
        sizes[rng.randrange(1, 5)] = n + rng.randrange(1, 3)
        request = _top_k_request(n, sizes=sizes)
    else:
        length = rng.randrange(1, 40)
        request = _request(
            "token_spans",
            input_ids=np.array([[rng.randrange(-5, 40000) for _ in range(length)]] * n, np.int32),
            attention_mask=np.array([[rng.randrange(-1, 3) for _ in range(length)]] * n, np.int32),
        )
    return f"random {['bytes', 'shape', 'dtype', 'options', 'batch sizes', 'token_spans'][kind]}", request


# ---------------------------------------------------------------- REST requests
def _random_json(rng: random.Random, depth: int = 0):
    kind = rng.randrange(7 if depth < 5 else 4)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 2**31, 2**70, 1.5, -1e308])
    if kind == 2:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(0, 20)))
    if kind == 3:
        return {"b64": base64.b64encode(_random_bytes(rng)).decode()}
    if kind in (4, 5):
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    keys = ["question", "context", "top_k", "instances", "inputs", "signature_name", "max_answer_len", "x"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


def _rest_cases(rng: random.Random) -> list[tuple[str, bytes, dict | None]]:
    good = {"question": QUESTION, "context": CONTEXT}
    many = json.dumps({"instances": [good] * (LIMITS.max_examples + 1)}).encode()
    cases = [
        ("body past max_request_bytes", b"", {"Content-Length": str(DEFAULT_MAX_REQUEST_BYTES + 1)}),
        ("past max_examples", many, None),
        ("deep nesting", b"[" * rng.randrange(10_000, 500_000), None),
        ("not UTF-8", b'{"instances": [{"question": "\xff\xfe", "context": "c"}]}', None),
        ("no Content-Length", b"", {"Transfer-Encoding": "chunked"}),
    ]
    for i in range(32):
        kind = i % 4
        if kind == 0:
            body = json.dumps(_random_json(rng)).encode()
        elif kind == 1:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        elif kind == 2:
            instance = dict(good, signature_name="answer_top_k")
            instance[rng.choice(["question", "context", "top_k", "max_answer_len", "handle_impossible_answer"])] = (
                _random_json(rng)
            )
            body = json.dumps({"signature_name": "answer_top_k", "instances": [instance]}).encode()
        else:
            body = json.dumps({"inputs": {"question": _random_json(rng), "context": _random_json(rng)}}).encode()
        cases.append((f"random {['JSON', 'bytes', 'typed field', 'columns'][kind]}", body, None))
    return cases


def _post(port: int, body: bytes, headers: dict | None) -> int:
    status, reply = post(port, f"/v1/models/{NAME}:predict", body, headers)
    assert status == 200 or reply.get("error"), reply
    return status


def _alive(process, channel) -> bool:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = NAME
    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
    return process.poll() is None and status.model_version_status[0].version >= 1


def test_the_server_survives_every_hostile_request(served):
    process, channel, rest_port = served
    rng = random.Random(SEED)
    predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
    good = _top_k_request(1, top_k=3)
    before = predict(good, timeout=30)
    rss_before = status_mb(process.pid, "VmRSS")

    outcomes = []
    for name, request in _grpc_cases(rng):
        started = time.monotonic()
        try:
            predict(request, timeout=60)
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code = error.code()
        outcomes.append(("gRPC", name, code.name, time.monotonic() - started))
        assert code in GRPC_ALLOWED, (name, code)
        assert _alive(process, channel), name
    for name, body, headers in _rest_cases(rng):
        started = time.monotonic()
        status = _post(rest_port, body, headers)
        outcomes.append(("REST", name, status, time.monotonic() - started))
        assert status in REST_ALLOWED, (name, status)
        assert _alive(process, channel), name

    after = predict(good, timeout=30)
    rss_after = status_mb(process.pid, "VmRSS")
    refusals = [seconds for _, _, outcome, seconds in outcomes if outcome not in ("OK", 200)]
    print(
        f"\n{len(outcomes)} hostile requests ({sum(o[0] == 'gRPC' for o in outcomes)} gRPC); "
        f"{len(refusals)} refused, slowest refusal {max(refusals) * 1000:.0f} ms; "
        f"server RSS {rss_before:.0f} -> {rss_after:.0f} MB"
    )
    for protocol, name, outcome, seconds in outcomes:
        if seconds > 0.1:
            print(f"  over 100 ms: {protocol} {name}: {outcome} in {seconds * 1000:.0f} ms")
    assert len(outcomes) >= 60
    for key in ("answer", "start", "end"):
        assert tf.make_ndarray(after.outputs[key]).tolist() == tf.make_ndarray(before.outputs[key]).tolist()
    assert rss_after - rss_before < RSS_GROWTH_BOUND_MB


def test_version_swaps_do_not_grow_the_server(served, repository):
    """Each swap loads a new version and unloads the old one; what the old one held goes back to the OS."""
    process, channel, _ = served
    predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = NAME
    predict(_top_k_request(1), timeout=30)
    rss_before = status_mb(process.pid, "VmRSS")
    newest = version_folders(repository)[-1]
    for version in range(newest + 1, newest + 3):
        shutil.copytree(repository / str(newest), repository.parent / f".tmp-{version}")
        (repository.parent / f".tmp-{version}").rename(repository / str(version))
        deadline = time.monotonic() + 60
        while [s.version for s in status(request, timeout=10).model_version_status] != [version]:
            assert time.monotonic() < deadline, f"version {version} was not served"
            time.sleep(0.1)
        predict(_top_k_request(1), timeout=30)
    # The old version is unloaded just after the new one is listed: wait for its memory, for at most 10 s.
    deadline = time.monotonic() + 10
    rss_after = status_mb(process.pid, "VmRSS")
    while rss_after - rss_before >= SWAPS_GROWTH_BOUND_MB and time.monotonic() < deadline:
        time.sleep(0.1)
        rss_after = status_mb(process.pid, "VmRSS")
    print(f"\n2 version swaps: server RSS {rss_before:.0f} -> {rss_after:.0f} MB")
    assert rss_after - rss_before < SWAPS_GROWTH_BOUND_MB
