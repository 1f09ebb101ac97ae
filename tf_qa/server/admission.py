"""Admission by cost: a Predict request is let in while the server has room for its work, counted in windows.

A request's work is the windows its contexts take through the model, and it is known before anything runs:
``token_spans`` carries its windows as rows, and a text signature's follow from its questions' and contexts'
lengths (``tf_qa.graph.windows.windows_per_example``), estimated here from their UTF-8 bytes at
``BYTES_PER_TOKEN`` (SQuAD's contexts take 4.9 bytes a WordPiece token at the median, 3.7 at the 1st percentile,
so English is over-estimated a little; the graph counts the real windows and refuses a call over its limit).
Requests are bounded too, by count (one server thread each). A refusal says when to come back: the work in
flight divided by the rate the server has been finishing work.

Example:

>>> admission = Admission(max_requests=2, max_windows=8)
>>> with admission.request(), admission.work(3):
...     admission.windows_in_flight
3
>>> with admission.request(), admission.work(6), admission.request(), admission.work(3):  # doctest: +ELLIPSIS
...     pass
Traceback (most recent call last):
...
tf_qa.server.admission.Overloaded: the server is busy: 6 windows of work are in flight and this request brings 3, ...
>>> estimate_windows([b"Who?"], [b"word " * 2000], max_seq_len=384, doc_stride=128)
10
"""

from __future__ import annotations

import collections
import math
import threading
import time
from contextlib import contextmanager

import numpy as np

from tf_qa import errors
from tf_qa.graph.windows import too_long_for_windows, windows_per_example
from tf_qa.server.options import serve_flag

#: The bytes of text a WordPiece token is taken to cover when a request's windows are estimated.
BYTES_PER_TOKEN = 4
#: The wait a refusal asks for before any work has finished, and its bounds (seconds).
DEFAULT_RETRY_AFTER, MIN_RETRY_AFTER, MAX_RETRY_AFTER = 0.1, 0.01, 5.0
#: How far back finished work counts toward the server's rate (seconds).
RATE_HORIZON = 2.0


class Overloaded(errors.ResourceExhausted):
    """Refused at admission, before any work: ``refusal`` names the limit (``max_in_flight`` requests or
    ``max_windows_in_flight`` windows); ``retry_after`` says when there is likely room again (the servers send it:
    gRPC's ``grpc-retry-pushback-ms``, REST's ``Retry-After``)."""

    def __init__(self, message: str, refusal: str, retry_after: float):
        super().__init__(f"{message}; retry in about {retry_after * 1000:.0f} ms")
        self.refusal = refusal
        self.retry_after = retry_after


def estimate_windows(questions, contexts, *, max_seq_len: int, doc_stride: int) -> int:
    """The windows a text request of UTF-8 ``questions`` and ``contexts`` will take, from their lengths.

    An example whose question leaves no room for a window (the graph refuses it) counts as one.
    """
    tokens = lambda texts: np.array([math.ceil(len(text) / BYTES_PER_TOKEN) for text in texts], dtype=np.int64)  # noqa: E731
    lengths = (tokens(questions), tokens(contexts))
    geometry = {"max_seq_len": max_seq_len, "doc_stride": doc_stride, "maximum": np.maximum}
    counts = windows_per_example(*lengths, **geometry)
    return int(np.where(too_long_for_windows(*lengths, **geometry), 1, counts).sum())


class Admission:
    """Bounds the requests (``max_requests``) and the windows of work (``max_windows``) in flight at once.

    A request larger than ``max_windows`` alone is let in when nothing else is in flight, so that it can run.
    """

    def __init__(self, max_requests: int, max_windows: int):
        self.max_requests, self.max_windows = max_requests, max_windows
        self.requests_in_flight = self.windows_in_flight = 0
        self._finished: collections.deque[tuple[float, int]] = collections.deque()  # (time, windows)
        self._finished_windows = 0  # their sum: a refusal must cost little, they come by the thousand
        self._lock = threading.Lock()

    @contextmanager
    def request(self):
        """Holds one of the ``max_requests`` places; ``Overloaded`` at once when none is free."""
        with self._held("requests_in_flight", 1):
            yield

    @contextmanager
    def work(self, windows: int):
        """Holds ``windows`` of the ``max_windows`` budget while the request runs; ``Overloaded`` at once when the
        work in flight leaves too little."""
        with self._held("windows_in_flight", windows):
            try:
                yield
            finally:  # failed work took the server's time too
                with self._lock:
                    self._finished.append((time.monotonic(), windows))
                    self._finished_windows += windows

    @contextmanager
    def _held(self, counter: str, amount: int):
        with self._lock:
            held = getattr(self, counter)
            if counter == "requests_in_flight" and held + amount > self.max_requests:
                refused = Overloaded(
                    f"the server is busy: {held} requests are in flight, the limit of tf-qa serve "
                    f"{serve_flag('max_in_flight')}",
                    "max_in_flight",
                    self._retry_after(),
                )
            elif counter == "windows_in_flight" and held and held + amount > self.max_windows:
                refused = Overloaded(
                    f"the server is busy: {held} windows of work are in flight and this request brings {amount}, "
                    f"over the limit of {self.max_windows} (tf-qa serve {serve_flag('max_windows_in_flight')})",
                    "max_windows_in_flight",
                    self._retry_after(),
                )
            else:
                refused = None
                setattr(self, counter, held + amount)
        if refused:
            raise refused
        try:
            yield
        finally:
            with self._lock:
                setattr(self, counter, getattr(self, counter) - amount)

    def retry_after(self) -> float:
        """Seconds a refused client should wait: about the time the work in flight takes to finish, within bounds."""
        with self._lock:
            return self._retry_after()

    def _retry_after(self) -> float:
        now = time.monotonic()
        while self._finished and self._finished[0][0] < now - RATE_HORIZON:
            self._finished_windows -= self._finished.popleft()[1]
        if not self._finished:
            return DEFAULT_RETRY_AFTER
        rate = self._finished_windows / max(now - self._finished[0][0], 0.05)  # windows finished per second
        return min(MAX_RETRY_AFTER, max(MIN_RETRY_AFTER, self.windows_in_flight / rate))


def request_windows(inputs: dict[str, np.ndarray], *, max_seq_len: int, doc_stride: int) -> int:
    """The windows of work a request's ``inputs`` bring (at least 1): ``token_spans``' rows, or a text request's
    estimate (``estimate_windows``)."""
    if "question" in inputs and "context" in inputs:
        questions, contexts = (np.asarray(inputs[key], dtype=object).ravel() for key in ("question", "context"))
        if len(questions) != len(contexts):  # the graph refuses it before any window is made
            return max(1, len(questions), len(contexts))
        utf8 = lambda texts: [t.encode() if isinstance(t, str) else bytes(t) for t in texts]  # noqa: E731
        return max(1, estimate_windows(utf8(questions), utf8(contexts), max_seq_len=max_seq_len, doc_stride=doc_stride))
    rows = [np.shape(value)[0] for value in inputs.values() if np.ndim(value)]
    return max([1, *rows])
