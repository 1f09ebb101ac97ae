"""Beyond Python: the README's Node.js client (compiled from the same .proto files) and its curl example against
the REST API, run as written (host, port and model name substituted) and compared with the Python client."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from fake_server import FlakyPredictionService, fake_server
from servers import MODEL_NAME, SERVER_PYTHON, serve

from tf_qa.client import QAClient

ROOT = Path(__file__).resolve().parents[2]
QUESTION, CONTEXT = "What is the capital of France?", "Paris is the capital of France."


def _readme_block(marker: str) -> str:
    """The shell block of the README that follows ``<!-- marker -->``."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker} -->\s*```bash\n(.*?)```", readme, re.S)
    assert match, f"README has no block marked {marker}"
    return match.group(1)


def _run_readme_block(marker: str, grpc_port: int, rest_port: int) -> str:
    script = (
        _readme_block(marker)
        .replace("localhost:8500", f"127.0.0.1:{grpc_port}")
        .replace("localhost:8501", f"127.0.0.1:{rest_port}")
        .replace("distilbert-squad", MODEL_NAME)
    )
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _needs(program: str, ready: bool = True) -> None:
    if shutil.which(program) and ready:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{program} is missing in CI (scripts/test-client.sh installs the Node.js client's packages)")
    pytest.skip(f"{program} is not installed here")


def test_the_node_client_answers_as_the_python_one(served):
    _needs("node", (ROOT / "clients" / "node" / "node_modules" / "@grpc" / "grpc-js").is_dir())
    grpc_port, rest_port = served
    lines = _run_readme_block("node-example", grpc_port, rest_port).splitlines()
    with QAClient(f"127.0.0.1:{grpc_port}", MODEL_NAME, timeout=30) as client:
        expected = client.answer(QUESTION, CONTEXT, top_k=2)
    answers = [json.loads(line) for line in lines]
    assert [(a["answer"], a["start"], a["end"]) for a in answers] == [
        (e["answer"], e["start"], e["end"]) for e in expected
    ]
    assert [a["score"] for a in answers] == pytest.approx([e["score"] for e in expected], abs=1e-6)


def test_the_curl_example_answers_as_the_python_client(served):
    _needs("curl")
    grpc_port, rest_port = served
    predictions = json.loads(_run_readme_block("curl-example", grpc_port, rest_port))["predictions"]
    with QAClient(f"127.0.0.1:{grpc_port}", MODEL_NAME, timeout=30) as client:
        expected = client.answer(QUESTION, CONTEXT)
    assert predictions[0]["answer"] == expected["answer"]
    assert (predictions[0]["start"], predictions[0]["end"]) == (expected["start"], expected["end"])
    assert predictions[0]["score"] == pytest.approx(expected["score"], abs=1e-6)


@pytest.fixture(scope="module")
def mtls_served(client_repository, tmp_path_factory):
    """A server under TLS with client verification (tests/make_pki.py's certificates), its log lines kept: the
    gRPC port, the certificates' paths and the log file."""
    folder = tmp_path_factory.mktemp("pki")
    subprocess.run([SERVER_PYTHON, str(ROOT / "tests" / "make_pki.py"), str(folder)], check=True)
    pem = {name: str(folder / f"{name}.pem") for name in ("ca", "client", "client-key", "rogue", "rogue-key")}
    log = folder / "serve.log"
    with serve(client_repository, "--ssl-config-file", str(folder / "ssl.config"), log_file=log) as (port, _):
        yield port, pem, log


def _node_ask(port: int, pem: dict, *flags: str, question: str = QUESTION) -> subprocess.CompletedProcess:
    command = ["node", "clients/node/ask.js", "--target", f"localhost:{port}", "--model-name", MODEL_NAME]
    command += ["--question", question, "--context", CONTEXT, "--ca", pem["ca"], "--timeout", "10", *flags]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_the_node_client_presents_a_client_certificate_under_client_verify(mtls_served):
    _needs("node", (ROOT / "clients" / "node" / "node_modules" / "@grpc" / "grpc-js").is_dir())
    port, pem, _ = mtls_served
    answered = _node_ask(port, pem, "--cert", pem["client"], "--key", pem["client-key"])
    assert answered.returncode == 0 and json.loads(answered.stdout.splitlines()[0])["answer"], answered.stderr
    for refused in (_node_ask(port, pem, "--cert", pem["rogue"], "--key", pem["rogue-key"]), _node_ask(port, pem)):
        assert refused.returncode == 1 and "UNAVAILABLE" in refused.stderr, refused.stderr


def test_the_node_clients_traceparent_reaches_the_servers_log_lines(mtls_served):
    _needs("node", (ROOT / "clients" / "node" / "node_modules" / "@grpc" / "grpc-js").is_dir())
    port, pem, log = mtls_served
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    client = ("--cert", pem["client"], "--key", pem["client-key"])
    done = _node_ask(port, pem, *client, "--traceparent", traceparent, question="   ")
    assert done.returncode == 1 and "INVALID_ARGUMENT" in done.stderr, done.stderr
    time.sleep(0.2)  # the server's log line is written as the refusal goes out
    lines = [line for line in log.read_text().splitlines() if traceparent in line]
    assert lines and "INVALID_ARGUMENT" in lines[0] and "question is empty" in lines[0], log.read_text()[-2000:]


@pytest.mark.parametrize(("pushback_ms", "timeout", "calls", "code"), [(50, "10", 3, 0), (5000, "1", 1, 1)])
def test_the_node_client_waits_as_the_server_asks_within_its_deadline(pushback_ms, timeout, calls, code):
    _needs("node", (ROOT / "clients" / "node" / "node_modules" / "@grpc" / "grpc-js").is_dir())
    service = FlakyPredictionService(2, failure=grpc.StatusCode.RESOURCE_EXHAUSTED, pushback_ms=pushback_ms)
    server, port = fake_server(service)
    try:
        command = ["node", "clients/node/ask.js", "--target", f"127.0.0.1:{port}", "--model-name", MODEL_NAME]
        command += ["--question", QUESTION, "--context", CONTEXT, "--timeout", timeout]
        started = time.monotonic()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        server.stop(0)
    assert (done.returncode, service.calls) == (code, calls), done.stderr
    if code:
        assert "RESOURCE_EXHAUSTED" in done.stderr and time.monotonic() - started < 5
    else:
        assert json.loads(done.stdout)["answer"] == "Paris"
