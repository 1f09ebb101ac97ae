"""Server-side batching of concurrent Predict requests, as TF Serving's batcher does.

Requests for the same version and signature whose inputs agree on every dimension but the first are merged
along dim 0 (every tf-qa signature is batched there), run as one ``Session.run`` and split back. A batch
closes when it reaches ``max_batch_size`` examples or its first request has waited ``timeout`` seconds. At most
``num_threads`` batches run at once. With no timeout, a request that finds nothing queued and a batch free to
run is a batch of its own at once: it runs on the caller's thread, sparing the hand-offs to a batch thread and
back (benchmarks/README.md has what they cost).

If a merged batch fails with InvalidArgument (one request's bad input, or a merged batch over one of the
graph's limits), each of its requests is run alone, so a bad request never fails the good ones it was batched
with.

Each request may carry a deadline (``time.monotonic()`` seconds). A request whose deadline passes while it
waits is failed with ``DeadlineExpired`` without running; a batch runs with a timeout of its latest deadline,
so no request is cut short before its own.

Example:

>>> batcher = RequestBatcher(run=lambda key, feeds: ..., max_batch_size=16, timeout=0.002)   # doctest: +SKIP
>>> batcher.submit(key, {"question:0": q, "context:0": c})                                  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future

import numpy as np

from tf_qa.errors import DeadlineExceeded

#: run(key, feeds, timeout) -> list of output arrays, each batched along dim 0; timeout in seconds or None.
RunFunction = Callable[[Hashable, dict[str, np.ndarray], "float | None"], list[np.ndarray]]


def batching_options(parameters, **overrides) -> dict:
    """``RequestBatcher`` options from TF Serving's ``BatchingParameters`` (its unset fields: tf-qa's defaults),
    with ``overrides`` (max_batch_size, timeout_micros, num_threads) that are not None taking precedence."""
    read = {
        "max_batch_size": ("max_batch_size", 16),
        "timeout_micros": ("batch_timeout_micros", 0),
        "num_threads": ("num_batch_threads", 2),
    }
    options = {
        name: overrides[name]
        if overrides.get(name) is not None
        else (getattr(parameters, field).value if parameters.HasField(field) else default)
        for name, (field, default) in read.items()
    }
    options["timeout"] = options.pop("timeout_micros") / 1e6
    return options


class DeadlineExpired(DeadlineExceeded):
    """A request's deadline passed before it could run (so it never ran)."""

    refusal = "deadline"


class _Task:
    __slots__ = ("key", "feeds", "size", "deadline", "future")

    def __init__(self, key: Hashable, feeds: dict[str, np.ndarray], deadline: float | None):
        self.key = (key, tuple(sorted((name, value.dtype.str, value.shape[1:]) for name, value in feeds.items())))
        self.feeds = feeds
        self.size = len(next(iter(feeds.values())))
        self.deadline = deadline
        self.future: Future = Future()


def _timeout(tasks: list[_Task]) -> float | None:
    """Seconds until the latest deadline of ``tasks`` (None when one of them has none)."""
    if any(task.deadline is None for task in tasks):
        return None
    return max(task.deadline for task in tasks) - time.monotonic()


class RequestBatcher:
    """Merges concurrent requests into batches run by ``num_threads`` threads.

    Args:
        run: runs one (merged) request: ``run(key, feeds)`` returns the output arrays.
        max_batch_size: examples per merged batch (a larger single request runs alone).
        timeout: seconds a request may wait for others to join it.
        num_threads: batches run at once.
        is_invalid_argument: tells whether an exception is the caller's fault (then requests are retried alone).
    """

    def __init__(
        self,
        run: RunFunction,
        *,
        max_batch_size: int = 16,
        timeout: float = 0.002,
        num_threads: int = 2,
        is_invalid_argument: Callable[[BaseException], bool] = lambda error: False,
    ):
        if max_batch_size < 1 or num_threads < 1 or timeout < 0:
            raise ValueError("max_batch_size and num_threads must be at least 1, timeout at least 0")
        self.run = run
        self.max_batch_size = max_batch_size
        self.timeout = timeout
        self.num_threads = num_threads
        self.is_invalid_argument = is_invalid_argument
        self._queue: collections.deque[_Task] = collections.deque()
        self._running = 0  # batches being gathered or run, on the batch threads or on callers' threads
        self._condition = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"batch-{i}", daemon=True) for i in range(num_threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, key: Hashable, feeds: dict[str, np.ndarray], deadline: float | None = None) -> list[np.ndarray]:
        """Runs ``feeds`` (possibly merged with others of the same ``key``); blocks for its outputs.

        Raises ``DeadlineExpired`` when ``deadline`` (``time.monotonic()`` seconds) passes before it runs.
        """
        task = _Task(key, feeds, deadline)
        with self._condition:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            alone = self.timeout == 0 and not self._queue and self._running < self.num_threads
            if alone:
                self._running += 1
            else:
                self._queue.append(task)
                self._condition.notify_all()
        if alone:
            self._execute_and_release([task])
        return task.future.result()

    def close(self) -> None:
        """Runs what is queued, then stops the threads."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join()

    def _next_batch(self) -> list[_Task] | None:
        """The next batch to run, counted as running; None once closed and drained."""
        with self._condition:
            while not self._queue or self._running >= self.num_threads:
                if self._closed and not self._queue:
                    return None
                self._condition.wait()
            self._running += 1
            first = self._queue.popleft()
            batch, size = [first], first.size
            deadline = time.monotonic() + self.timeout
            while size < self.max_batch_size:
                for task in list(self._queue):
                    if task.key == first.key and size + task.size <= self.max_batch_size:
                        self._queue.remove(task)
                        batch.append(task)
                        size += task.size
                remaining = deadline - time.monotonic()
                if size >= self.max_batch_size or remaining <= 0 or self._closed:
                    break
                self._condition.wait(remaining)
            return batch

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._execute_and_release(batch)

    def _execute_and_release(self, batch: list[_Task]) -> None:
        try:
            self._execute(batch)
        finally:
            with self._condition:
                self._running -= 1
                self._condition.notify_all()

    def _execute(self, batch: list[_Task]) -> None:
        now = time.monotonic()
        for task in batch:
            if task.deadline is not None and task.deadline <= now:
                task.future.set_exception(DeadlineExpired("the request's deadline passed while it waited to run"))
        batch = [task for task in batch if not task.future.done()]
        if len(batch) <= 1:
            for task in batch:
                self._run_alone(task)
            return
        key = batch[0].key[0]
        feeds = {name: np.concatenate([task.feeds[name] for task in batch]) for name in batch[0].feeds}
        try:
            outputs = self.run(key, feeds, _timeout(batch))
        except BaseException as error:  # noqa: BLE001  every waiting caller must hear of it
            if self.is_invalid_argument(error):
                for task in batch:
                    self._run_alone(task)
            else:
                for task in batch:
                    task.future.set_exception(error)
            return
        offset = 0
        for task in batch:
            task.future.set_result([output[offset : offset + task.size] for output in outputs])
            offset += task.size

    def _run_alone(self, task: _Task) -> None:
        try:
            task.future.set_result(self.run(task.key[0], task.feeds, _timeout([task])))
        except BaseException as error:  # noqa: BLE001
            task.future.set_exception(error)
