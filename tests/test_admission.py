"""Admission by cost (tf_qa.server.admission): windows estimated before a request runs, the budget, and when a
refused client is told to come back."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from tf_qa.server.admission import (
    DEFAULT_RETRY_AFTER,
    MAX_RETRY_AFTER,
    Admission,
    Overloaded,
    estimate_windows,
    request_windows,
)

SQUAD = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad" / "squad-v1.1-dev-part1.json"
GEOMETRY = {"max_seq_len": 384, "doc_stride": 128}


def _real_windows(tokenizer, question: str, context: str) -> int:
    encoded = tokenizer(
        question, context, truncation="only_second", max_length=384, stride=128, return_overflowing_tokens=True
    )
    return len(encoded["input_ids"])


@pytest.mark.parametrize("repeat", [1, 3, 8, 20])
def test_the_estimate_covers_the_windows_of_english_text(hf_tokenizer, repeat):
    """SQuAD paragraphs, alone and repeated into long documents: never fewer windows than the tokenizer makes,
    and at most 1.6 times as many (a request's cost errs high, so the budget holds)."""
    if not SQUAD.exists():
        pytest.skip(f"{SQUAD} is absent")
    articles = json.loads(SQUAD.read_text())["data"]
    pairs = [(p["qas"][0]["question"], p["context"]) for a in articles[:6] for p in a["paragraphs"][:5]]
    real = sum(_real_windows(hf_tokenizer, q, " ".join([c] * repeat)) for q, c in pairs)
    estimated = estimate_windows(
        [q.encode() for q, _ in pairs], [" ".join([c] * repeat).encode() for _, c in pairs], **GEOMETRY
    )
    print(f"x{repeat}: {real} windows, estimated {estimated} ({estimated / real:.2f}x)")
    assert real <= estimated <= 1.6 * real


@pytest.mark.parametrize(
    "inputs, expected",
    [
        ({"question": np.array([b"Who?"] * 32, object), "context": np.array([b"Paris."] * 32, object)}, 32),
        ({"question": np.array([b"Who?"]), "context": np.array([b"word " * 2000])}, 10),
        ({"question": np.array(["Who?"]), "context": np.array(["word " * 2000])}, 10),  # REST's str
        ({"question": np.array([b"x" * 2000]), "context": np.array([b"word " * 2000])}, 1),  # the graph refuses it
        ({"question": np.array([b"a", b"b"]), "context": np.array([b"c"])}, 2),  # the graph refuses it
        ({"input_ids": np.zeros((7, 384), np.int32), "attention_mask": np.zeros((7, 384), np.int32)}, 7),
        ({"question": np.array([], object), "context": np.array([], object)}, 1),
    ],
    ids=["short", "long", "long-str", "question-too-long", "mismatched", "token_spans", "empty"],
)
def test_request_windows(inputs, expected):
    assert request_windows(inputs, **GEOMETRY) == expected


def test_the_budget_bounds_windows_and_lets_a_large_request_run_alone():
    admission = Admission(max_requests=10, max_windows=8)
    with admission.work(6):
        with admission.work(2):
            with pytest.raises(Overloaded, match="8 windows of work are in flight") as refused:
                with admission.work(1):
                    pass
    assert refused.value.refusal == "max_windows_in_flight" and refused.value.code.name == "RESOURCE_EXHAUSTED"
    with admission.work(100):  # larger than the budget, nothing else in flight
        assert admission.windows_in_flight == 100
    assert admission.windows_in_flight == 0


def test_the_request_count_is_bounded_too():
    admission = Admission(max_requests=1, max_windows=8)
    with admission.request():
        with pytest.raises(Overloaded, match="1 requests are in flight") as refused:
            with admission.request():
                pass
    assert refused.value.refusal == "max_in_flight"
    with admission.request():  # the place is free again
        pass


def test_retry_after_is_the_time_the_work_in_flight_takes_at_the_recent_rate():
    admission = Admission(max_requests=100, max_windows=1000)
    assert admission.retry_after() == DEFAULT_RETRY_AFTER  # nothing finished yet
    started = time.monotonic()
    while time.monotonic() - started < 0.2:  # about 100 windows a second
        with admission.work(1):
            time.sleep(0.01)
    with admission.work(50):
        slow = admission.retry_after()
    with admission.work(5):
        quick = admission.retry_after()
    print(f"50 windows in flight: retry after {slow:.3f} s; 5: {quick:.3f} s")
    assert 0.2 < slow < 1.0 and quick < slow / 5
    with admission.work(10**6):
        assert admission.retry_after() == MAX_RETRY_AFTER
