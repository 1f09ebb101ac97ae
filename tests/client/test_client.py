"""Every client path against a real ``tf-qa serve``, with the client-only install: sync and async calls, TLS,
errors, retries, and the command line's ask and evaluate."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time

import grpc
import pytest
from fake_server import FlakyPredictionService, fake_server
from servers import MODEL_NAME, SERVER_PYTHON, free_port, serve

from tf_qa import errors
from tf_qa.client import AsyncQAClient, QAClient

QUESTION, CONTEXT = "What is the capital of France?", "Paris is the capital and most populous city of France."
QUESTIONS = [QUESTION, "Who wrote it? café 中文", "Which river?"]
CONTEXTS = [CONTEXT, "Adam Mickiewicz wrote Pan Tadeusz — café 中文 🥲.", "The Seine flows through Paris."]


@pytest.fixture(scope="module")
def target(served):
    return f"127.0.0.1:{served[0]}"


def test_answers_are_spans_of_their_contexts(target):
    with QAClient(target, MODEL_NAME, timeout=60) as client:
        single = client.answer(QUESTION, CONTEXT)
        batch = client.answer_batch(QUESTIONS, CONTEXTS)
        top = client.answer(QUESTION, CONTEXT, top_k=3)
    assert batch[0] == single and len(batch) == 3
    for result, context in zip(batch, CONTEXTS):
        assert result["answer"] == context[result["start"] : result["end"]] and 0 < result["score"] <= 1
    assert len(top) == 3 and top[0] == single
    assert [r["score"] for r in top] == sorted((r["score"] for r in top), reverse=True)


def test_spans_metadata_and_status(target):
    with QAClient(target, MODEL_NAME, timeout=60) as client:
        spans = client.spans([[101, 2054, 102, 3000, 3001, 102]], [[1, 1, 1, 1, 1, 1]])
        metadata, status = client.metadata(), client.status()
    assert set(spans) == {"start", "end", "score"} and 3 <= spans["start"][0] <= spans["end"][0] <= 4
    assert metadata["model"] == MODEL_NAME
    assert {"serving_default", "answer_top_k", "token_spans"} <= set(metadata["signatures"])
    assert metadata["signatures"]["answer_top_k"]["inputs"]["top_k"] == {"dtype": 3, "shape": [-1]}
    assert status == [{"version": 1, "state": "AVAILABLE"}]


def test_the_async_client_gives_the_same_results(target):
    async def ask():
        async with AsyncQAClient(target, MODEL_NAME, timeout=60) as client:
            return (
                await client.answer(QUESTION, CONTEXT, top_k=2),
                await client.answer_batch(QUESTIONS, CONTEXTS),
                await client.status(),
                await client.metadata(),
            )

    single, batch, status, metadata = asyncio.run(ask())
    with QAClient(target, MODEL_NAME, timeout=60) as client:
        assert single == client.answer(QUESTION, CONTEXT, top_k=2)
        assert batch == client.answer_batch(QUESTIONS, CONTEXTS)
        assert status == client.status() and metadata == client.metadata()


@pytest.mark.parametrize(
    ("model", "question", "error", "message"),
    [
        (MODEL_NAME, "", errors.InvalidRequest, "question is empty"),
        ("no-such-model", QUESTION, errors.ModelNotFound, "no-such-model"),
    ],
)
def test_errors_carry_the_servers_message(target, model, question, error, message):
    with QAClient(target, model, timeout=30) as client, pytest.raises(error, match=message):
        client.answer(question, CONTEXT)


def test_a_deadline_too_short_and_a_server_that_is_not_there(target):
    with QAClient(target, MODEL_NAME, timeout=0.001, retries=0) as client, pytest.raises(errors.DeadlineExceeded):
        client.answer_batch([QUESTION] * 64, [CONTEXT * 50] * 64)
    nowhere = f"127.0.0.1:{free_port()}"
    with QAClient(nowhere, MODEL_NAME, timeout=2, retries=2) as client:
        with pytest.raises(errors.ServerUnavailable, match=nowhere):
            client.answer(QUESTION, CONTEXT)


@pytest.mark.parametrize(
    ("failures", "then", "calls", "outcome"),
    [
        (3, None, 4, "answered"),  # UNAVAILABLE is retried
        (0, grpc.StatusCode.INVALID_ARGUMENT, 1, errors.InvalidRequest),  # never retried
        (9, None, 3, errors.ServerUnavailable),  # retries=2: three attempts in all
    ],
)
def test_retries_only_unavailable(failures, then, calls, outcome):
    service = FlakyPredictionService(failures, then)
    server, port = fake_server(service)
    try:
        retries = 3 if outcome == "answered" else 2
        with QAClient(f"127.0.0.1:{port}", MODEL_NAME, timeout=30, retries=retries, backoff=0.01) as client:
            if outcome == "answered":
                assert client.answer(QUESTION, CONTEXT)["answer"] == "Paris"
            else:
                with pytest.raises(outcome):
                    client.answer(QUESTION, CONTEXT)
    finally:
        server.stop(0)
    assert service.calls == calls


@pytest.mark.parametrize(
    ("pushback_ms", "timeout", "calls", "outcome"),
    [
        (50, 10.0, 3, "answered"),  # two refusals, each waited out (25-75 ms with jitter), then the answer
        (2000, 0.5, 1, errors.ResourceExhausted),  # a wait past the deadline: raised at once, not slept through
        (None, 10.0, 1, errors.ResourceExhausted),  # no pushback (a message over a size limit): never retried
    ],
)
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_refusal_that_says_when_is_retried_then_within_the_deadline(pushback_ms, timeout, calls, outcome, kind):
    service = FlakyPredictionService(2, failure=grpc.StatusCode.RESOURCE_EXHAUSTED, pushback_ms=pushback_ms)
    server, port = fake_server(service)
    started = time.monotonic()
    try:
        if kind == "sync":
            with QAClient(f"127.0.0.1:{port}", MODEL_NAME, timeout=timeout) as client:
                ask = lambda: client.answer(QUESTION, CONTEXT)  # noqa: E731
                result = ask() if outcome == "answered" else pytest.raises(outcome, ask)
        else:

            async def ask_async():
                async with AsyncQAClient(f"127.0.0.1:{port}", MODEL_NAME, timeout=timeout) as client:
                    return await client.answer(QUESTION, CONTEXT)

            ask = lambda: asyncio.run(ask_async())  # noqa: E731
            result = ask() if outcome == "answered" else pytest.raises(outcome, ask)
    finally:
        server.stop(0)
    elapsed = time.monotonic() - started
    assert service.calls == calls
    if outcome == "answered":
        assert result["answer"] == "Paris" and elapsed >= 2 * 0.025
    else:
        assert result.value.retry_after == (pushback_ms / 1000 if pushback_ms else None) and elapsed < timeout


def test_a_retry_reaches_a_server_that_comes_back():
    port, servers = free_port(), []
    starter = threading.Timer(0.5, lambda: servers.append(fake_server(FlakyPredictionService(0, None), port)[0]))
    starter.start()
    try:
        with QAClient(f"127.0.0.1:{port}", MODEL_NAME, timeout=30, retries=12, backoff=0.05) as client:
            assert client.answer(QUESTION, CONTEXT)["answer"] == "Paris"
    finally:
        starter.join()
        for server in servers:
            server.stop(0)


def test_tls(client_repository, tmp_path):
    # The certificate is made with the server's Python (the full install has `cryptography`).
    code = """
import sys, datetime
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
now = datetime.datetime.now(datetime.timezone.utc)
certificate = (
    x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(1)
    .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
    .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False).sign(key, hashes.SHA256())
)
open(sys.argv[1], "wb").write(certificate.public_bytes(serialization.Encoding.PEM))
pkcs8 = serialization.PrivateFormat.PKCS8
open(sys.argv[2], "wb").write(key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption()))
"""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([SERVER_PYTHON, "-c", code, str(cert), str(key)], check=True)
    with serve(client_repository, "--ssl-cert", str(cert), "--ssl-key", str(key)) as (port, _):
        credentials = grpc.ssl_channel_credentials(cert.read_bytes())
        with QAClient(f"localhost:{port}", MODEL_NAME, timeout=30, credentials=credentials) as client:
            assert client.answer(QUESTION, CONTEXT)["answer"]
        with QAClient(f"localhost:{port}", MODEL_NAME, timeout=3, retries=0) as plaintext:
            with pytest.raises(errors.ServerUnavailable):
                plaintext.answer(QUESTION, CONTEXT)


def _tf_qa(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tf_qa.cli", *args], capture_output=True, text=True, timeout=120)


def test_ask_and_evaluate_from_the_command_line(target, tmp_path):
    done = _tf_qa(
        "ask", "--target", target, "--model-name", MODEL_NAME, "--question", QUESTION, "--context", CONTEXT, "--json"
    )
    assert done.returncode == 0, done.stderr
    with QAClient(target, MODEL_NAME, timeout=30) as client:
        assert json.loads(done.stdout) == client.answer(QUESTION, CONTEXT)
    squad = {
        "version": "1.1",
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {
                        "context": c,
                        "qas": [{"id": str(i), "question": q, "answers": [{"text": c.split()[0], "answer_start": 0}]}],
                    }
                    for i, (q, c) in enumerate(zip(QUESTIONS, CONTEXTS))
                ],
            }
        ],
    }
    (tmp_path / "squad.json").write_text(json.dumps(squad), encoding="utf-8")
    done = _tf_qa("evaluate", "--squad", str(tmp_path / "squad.json"), "--target", target, "--model-name", MODEL_NAME)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("SQuAD v1.1: 3 questions  exact match ")
