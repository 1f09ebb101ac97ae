"""``benchmarks/grpc_overhead.py``: ``--context-words N`` cuts each context to its first N words; the ways take
turns in a new order each turn, a self-timed way (the C++ client) giving its own seconds; the C++ client times
every call and names a refused one."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from grpc_overhead import MODEL_NAME, CppClient, cpp_client_binary, cut_contexts, timed_blocks


@pytest.mark.parametrize(
    "context,words,cut",
    [
        ("Paris is the capital of France.", 3, "Paris is the"),
        ("Paris  is\nthe capital", 2, "Paris is"),  # any whitespace separates words
        ("Paris.", 10, "Paris."),  # shorter than the cut: whole
    ],
)
def test_cut_contexts_keeps_the_first_words_and_the_question(context, words, cut):
    question = "What is the capital of France?"
    assert cut_contexts([(question, context)], words) == [(question, cut)]


class _SelfTimed:
    """A way whose client times its own calls (as grpc_overhead's C++ client does)."""

    def __init__(self, log: list):
        self.log = log

    def timed_block(self, cases):
        self.log.extend("c" * len(cases))
        return [0.5] * len(cases)

    def __call__(self, question, context):
        raise AssertionError("a self-timed way is asked a block at a time")


def test_turns_take_the_self_timed_seconds_and_vary_their_order():
    log = []
    calls = {"a": lambda q, c: log.append("a"), "b": lambda q, c: log.append("b"), "c": _SelfTimed(log)}
    cases = [(f"q{i}", "context") for i in range(4)]
    seconds = timed_blocks(calls, cases, rounds=6, block=2)
    assert seconds["c"] == [0.5] * 24 and len(seconds["a"]) == len(seconds["b"]) == 24
    turns = ["".join(log[i : i + 6 : 2]) for i in range(0, len(log), 6)]
    assert all(sorted(turn) == ["a", "b", "c"] for turn in turns)
    # Each turn in a new order: a rotation (abc, bca, cab) would keep every way behind the same one.
    successors = {(turn + turn[0])[i : i + 2] for turn in turns for i in range(3)}
    assert len(successors) > 3


def test_the_cpp_client_times_every_call_it_makes(saved_model_dir):
    from tf_qa.saved_model.native import NativeUnavailable
    from tf_qa.server.native_grpc import NativeGrpcServer

    try:
        binary_built = cpp_client_binary()
    except NativeUnavailable as error:
        pytest.skip(str(error))
    assert binary_built.exists()
    with NativeGrpcServer(saved_model_dir, MODEL_NAME) as server:
        client = CppClient(server.target)
        try:
            seconds = client.timed_block([("Who wrote it?", "Ada wrote it."), ("Where?", "In Paris.")])
            assert len(seconds) == 2 and all(0 < second < 60 for second in seconds)
        finally:
            client.close()
    with NativeGrpcServer(saved_model_dir, "another-model") as server:
        client = CppClient(server.target)
        try:
            refused = "the C\\+\\+ client's calls failed: .*5 no model qa; this server serves another-model"
            with pytest.raises(RuntimeError, match=refused):
                client.timed_block([("Who wrote it?", "Ada wrote it.")])
        finally:
            client.close()
