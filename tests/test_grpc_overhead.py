"""``benchmarks/grpc_overhead.py --context-words N`` asks the held-out questions with each context cut to its
first N words, the questions as they are."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from grpc_overhead import cut_contexts


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
