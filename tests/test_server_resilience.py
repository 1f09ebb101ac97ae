"""Production behaviour of client and server: retries, a server going away, version swaps, TLS."""

from __future__ import annotations

import shutil
import socket
import threading
import time

import pytest

from tf_qa import errors
from tf_qa.client import QAClient
from tf_qa.server.model_server import ModelServer
from tf_qa.server.options import ServeOptions

NAME = "tiny-qa"
QUESTION, CONTEXT = "What is the capital of France?", "Paris is the capital and most populous city of France."


@pytest.fixture(scope="module")
def repository(tiny_repository):
    return tiny_repository


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_server_stopped_mid_call_fails_clearly_within_the_deadline(repository):
    server = ModelServer(ServeOptions(model_base_path=str(repository), model_name=NAME, port=0, poll_seconds=0)).start()
    # As much work as one request may carry: 28 contexts of 8.4 KB stay within max_text_bytes (256 KiB).
    long_contexts = [" ".join([CONTEXT] * 150)] * 28
    outcome = {}

    def ask():
        started = time.monotonic()
        try:
            with QAClient(f"127.0.0.1:{server.port}", NAME, timeout=8, retries=2, backoff=0.2) as client:
                client.answer_batch([QUESTION] * len(long_contexts), long_contexts)
            outcome["result"] = "answered"
        except errors.TFQAError as error:
            outcome["error"] = error
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=ask)
    thread.start()
    deadline = time.monotonic() + 20
    while server.repository.requests_in_flight() == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert server.repository.requests_in_flight() == 1, "the request never reached the server"
    server.stop(grace=0)
    thread.join(30)
    assert "error" in outcome, outcome
    assert isinstance(outcome["error"], (errors.ServerUnavailable, errors.DeadlineExceeded, errors.ServerError))
    assert f"127.0.0.1:{server.port}" in str(outcome["error"])
    assert outcome["seconds"] < 8 + 1.0


def test_new_version_published_while_requests_are_in_flight(repository, tmp_path):
    repo = tmp_path / NAME
    shutil.copytree(repository / "1", repo / "1")
    server = ModelServer(ServeOptions(model_base_path=str(repo), model_name=NAME, port=0, poll_seconds=0.2)).start()
    failures, versions_seen, answered, stop = [], set(), [], threading.Event()

    def hammer():
        with QAClient(f"127.0.0.1:{server.port}", NAME, timeout=60, retries=0) as client:
            while not stop.is_set():
                try:
                    client.answer(QUESTION, CONTEXT)
                    answered.append(1)
                    versions_seen.update(s["version"] for s in client.status())
                except errors.TFQAError as error:
                    failures.append(error)

    def wait_for(condition, what):
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        wait_for(lambda: len(answered) >= 8, "answers from version 1")
        # Publish as tf-qa export does: build beside, then one rename.
        shutil.copytree(repository / "1", repo / ".tmp-2")
        (repo / ".tmp-2").rename(repo / "2")
        wait_for(lambda: 2 in versions_seen, "version 2 to be served")
        wait_for(lambda: server.repository.statuses() == [2], "version 1 to be unloaded")
        answered_before = len(answered)
        wait_for(lambda: len(answered) >= answered_before + 8, "answers after version 1 was unloaded")
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
        server.stop()
    assert not failures, failures[:3]
    assert 2 in versions_seen and server.repository.statuses() == []
