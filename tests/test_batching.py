"""Server-side batching: concurrent requests are merged, split back in order, and a bad one fails alone."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tf_qa.server.batching import RequestBatcher


class InvalidInput(ValueError):
    pass


def _doubler(calls):
    def run(key, feeds, timeout):
        calls.append(len(feeds["x"]))
        if (feeds["x"] < 0).any():
            raise InvalidInput("negative input")
        return [feeds["x"] * 2, feeds["x"] + key]

    return run


def test_concurrent_requests_are_merged_and_split_back():
    calls = []
    batcher = RequestBatcher(_doubler(calls), max_batch_size=8, timeout=2.0, num_threads=1)
    barrier = threading.Barrier(8)

    def submit(i):
        barrier.wait()
        return batcher.submit(10, {"x": np.array([i, i])})

    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(submit, range(8)))
    finally:
        batcher.close()
    for i, (doubled, plus) in enumerate(results):
        assert doubled.tolist() == [2 * i, 2 * i] and plus.tolist() == [i + 10, i + 10]
    assert max(calls) == 8 and sum(calls) == 16  # merged up to max_batch_size examples


def test_requests_of_different_keys_or_shapes_are_not_merged():
    calls = []
    batcher = RequestBatcher(_doubler(calls), max_batch_size=16, timeout=0.2, num_threads=1)
    try:
        with ThreadPoolExecutor(4) as pool:
            futures = [
                pool.submit(batcher.submit, 1, {"x": np.zeros([1, 3])}),
                pool.submit(batcher.submit, 1, {"x": np.zeros([1, 5])}),
                pool.submit(batcher.submit, 2, {"x": np.zeros([1, 3])}),
            ]
            shapes = [f.result()[0].shape for f in futures]
    finally:
        batcher.close()
    assert shapes == [(1, 3), (1, 5), (1, 3)] and calls == [1, 1, 1]


def test_with_no_timeout_a_lone_request_runs_on_its_callers_thread():
    threads = []

    def run(key, feeds, timeout):
        threads.append(threading.current_thread().name)
        return [feeds["x"]]

    for timeout in (0.0, 0.001):
        batcher = RequestBatcher(run, timeout=timeout, num_threads=1)
        try:
            assert batcher.submit(1, {"x": np.ones([1])})[0].tolist() == [1.0]
        finally:
            batcher.close()
    assert threads == [threading.current_thread().name, "batch-0"]


@pytest.mark.parametrize("num_threads", [1, 2])
def test_no_more_batches_run_at_once_than_num_threads(num_threads):
    lock, running, most = threading.Lock(), [0], [0]

    def run(key, feeds, timeout):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return [feeds["x"]]

    batcher = RequestBatcher(run, max_batch_size=1, timeout=0.0, num_threads=num_threads)
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: batcher.submit(1, {"x": np.array([i])})[0].tolist(), range(16)))
    finally:
        batcher.close()
    assert results == [[i] for i in range(16)]
    assert most[0] == num_threads


def test_a_bad_request_fails_alone():
    calls = []
    batcher = RequestBatcher(
        _doubler(calls),
        max_batch_size=8,
        timeout=0.3,
        num_threads=1,
        is_invalid_argument=lambda e: isinstance(e, InvalidInput),
    )
    outcomes = {}
    barrier = threading.Barrier(3)

    def ask(value):
        barrier.wait()
        try:
            outcomes[value] = batcher.submit(0, {"x": np.array([value])})[0].tolist()
        except InvalidInput as error:
            outcomes[value] = str(error)

    threads = [threading.Thread(target=ask, args=(v,)) for v in (1, -1, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    batcher.close()
    assert outcomes == {1: [2], -1: "negative input", 3: [6]}


def test_bad_options():
    with pytest.raises(ValueError):
        RequestBatcher(lambda k, f, t: [], max_batch_size=0)


def test_batching_server_answers_as_unbatched(tiny_repository, tiny_server):
    from texts import non_ascii_cases

    from tf_qa.client import QAClient
    from tf_qa.server.model_server import ModelServer
    from tf_qa.server.options import ServeOptions

    repo = tiny_repository
    cases = non_ascii_cases()[:24]
    options = ServeOptions(
        model_base_path=str(repo),
        model_name="tiny-qa",
        port=0,
        poll_seconds=0,
        enable_batching=True,
        max_batch_size=8,
        batch_timeout_micros=50_000,
        num_batch_threads=2,
    )
    batched = ModelServer(options).start()
    try:
        with QAClient(f"127.0.0.1:{tiny_server.port}", "tiny-qa") as client:
            expected = [client.answer(q, c, top_k=2) for q, c in cases]
        with QAClient(f"127.0.0.1:{batched.port}", "tiny-qa") as client, ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda case: client.answer(case[0], case[1], top_k=2), cases))
            with pytest.raises(Exception, match="question is empty"):
                client.answer("  ", "context")
    finally:
        batched.stop(0)
    for mine, theirs in zip(got, expected):
        spans = lambda answers: [(a["answer"], a["start"], a["end"]) for a in answers]  # noqa: E731
        assert spans(mine) == spans(theirs)
        assert np.allclose([a["score"] for a in mine], [a["score"] for a in theirs], atol=1e-4)
