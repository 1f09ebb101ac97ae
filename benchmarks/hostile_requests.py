"""The reliability issue's table, run again: each hostile request against ``tf-qa serve``, and each CLI mistake.

For every request it prints what came back, how long it took and how much the server's peak RSS rose above its
RSS before the request. For every command, its exit code and the last line it printed.

    python benchmarks/hostile_requests.py [--size tiny|base] [--workdir /tmp/tf-qa-runs]
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from served import MODEL_NAME, SIZES, Served, export_seeded, random_words

from tf_qa.saved_model.warmup import make_request

QUESTION = b"What is the capital of France?"


def _request(signature: str, **inputs) -> predict_pb2.PredictRequest:
    return make_request(MODEL_NAME, signature, inputs)


def _context(chars: int) -> bytes:
    return random_words(chars, seed=0).encode()


def grpc_rows() -> list[tuple[str, predict_pb2.PredictRequest]]:
    one = lambda value, dtype: np.array([value], dtype)  # noqa: E731
    return [
        (
            "answer_top_k with top_k = 2^31-1",
            _request(
                "answer_top_k",
                question=one(QUESTION, object),
                context=one(b"Paris is nice.", object),
                top_k=one(2**31 - 1, np.int32),
                max_answer_len=one(15, np.int32),
                handle_impossible_answer=one(False, bool),
            ),
        ),
        (
            "token_spans with L = 100,000",
            _request(
                "token_spans",
                input_ids=np.zeros([1, 100_000], np.int32),
                attention_mask=np.ones([1, 100_000], np.int32),
            ),
        ),
        (
            "one 1,000,000-character context",
            _request("serving_default", question=one(QUESTION, object), context=one(_context(1_000_000), object)),
        ),
        (
            "one 250,000-character context (within the limits)",
            _request("serving_default", question=one(QUESTION, object), context=one(_context(250_000), object)),
        ),
        ("an empty batch", _request("serving_default", question=np.array([], object), context=np.array([], object))),
    ]


def rest_rows() -> list[tuple[str, bytes, dict | None]]:
    return [
        ("REST: deeply nested JSON", b"[" * 200_000, None),
        ("REST: a body that is not UTF-8", b'{"instances": [{"question": "\xff", "context": "c"}]}', None),
        ("REST: a 200 MB body", b"", {"Content-Length": str(200 << 20)}),
    ]


def _post(port: int, body: bytes, headers: dict | None) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        # With headers given, the body is not sent: the request only claims its length.
        connection.request(
            "POST", f"/v1/models/{MODEL_NAME}:predict", body=None if headers else body, headers=headers or {}
        )
        response = connection.getresponse()
        return f"HTTP {response.status} {json.loads(response.read()).get('error', 'answered')[:90]}"
    except (OSError, http.client.HTTPException) as error:
        return f"no response: {error!r}"
    finally:
        connection.close()


def _measured(served: Served, send) -> tuple[str, float, float]:
    served.reset_peak()
    before = served.rss_mb()
    started = time.monotonic()
    outcome = send()
    elapsed = time.monotonic() - started
    return outcome, elapsed, served.peak_rss_mb() - before


def cli_rows(repository: Path, workdir: Path) -> list[tuple[str, list[str]]]:
    not_json = workdir / "not-json.json"
    not_json.write_text("this is not JSON")
    tf_qa = [sys.executable, "-m", "tf_qa.cli"]
    return [
        (
            "tf-qa evaluate --squad MISSING",
            tf_qa + ["evaluate", "--squad", str(workdir / "missing.json"), "--saved-model", str(repository)],
        ),
        (
            "tf-qa evaluate --squad NOT-JSON",
            tf_qa + ["evaluate", "--squad", str(not_json), "--saved-model", str(repository)],
        ),
        (
            "tf-qa ask --context-file MISSING",
            tf_qa
            + [
                "ask",
                "--target",
                "127.0.0.1:1",
                "--model-name",
                "x",
                "--question",
                "q",
                "--context-file",
                str(workdir / "none"),
            ],
        ),
        ("tf-qa validate export/NAME (the model folder)", tf_qa + ["validate", str(repository)]),
        ("tf-qa bench --questions -5", tf_qa + ["bench", "--questions", "-5"]),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=SIZES, default="tiny")
    parser.add_argument("--workdir", default="/tmp/tf-qa-runs")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    repository = export_seeded(workdir, args.size)
    print(f"{'request':52} {'ms':>8} {'peak RSS +MB':>13}  outcome")
    with (
        Served(repository, rest=True) as served,
        grpc.insecure_channel(served.target, options=[("grpc.max_send_message_length", 256 << 20)]) as channel,
    ):
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict

        def grpc_send(request):
            try:
                response = predict(request, timeout=120)
                return f"OK, outputs {sorted(response.outputs)}"
            except grpc.RpcError as error:
                return f"{error.code().name} {error.details()[:90]}"

        print(f"(server idle RSS {served.rss_mb():.0f} MB)")
        for name, request in grpc_rows():
            outcome, seconds, grown = _measured(served, lambda: grpc_send(request))
            print(f"{name:52} {seconds * 1000:8.1f} {grown:13.0f}  {outcome}")
        for name, body, headers in rest_rows():
            outcome, seconds, grown = _measured(served, lambda: _post(served.rest_port, body, headers))
            print(f"{name:52} {seconds * 1000:8.1f} {grown:13.0f}  {outcome}")
        print(f"(server alive after all: {served.alive()}, RSS {served.rss_mb():.0f} MB)")
    for name, command in cli_rows(repository, workdir):
        done = subprocess.run(command, capture_output=True, text=True)
        traceback = "Traceback" in done.stdout + done.stderr
        last = (done.stdout if done.returncode == 0 else done.stderr).strip().splitlines()[-1]
        print(f"{name:52} exit {done.returncode}  traceback {'YES' if traceback else 'no'}  {last[:90]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
