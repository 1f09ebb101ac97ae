"""Merging window spans into answers: span texts by character offsets, case-insensitive merging, empty batches."""

from __future__ import annotations

import pytest
import tensorflow as tf

from tf_qa.graph.answers import _substrings, lower_utf8, merge_answers


@pytest.mark.parametrize(
    "texts,rows,starts,ends,expected",
    [
        (["café 中文 🥲 ok"], [0, 0, 0], [0, 5, 8], [4, 7, 9], ["café", "中文", "🥲"]),
        (["abc", "défg"], [1, 0, 1], [1, 0, 0], [4, 3, 0], ["éfg", "abc", ""]),
        (["a\x00b"], [0], [0], [3], ["a\x00b"]),
        (["x"], [], [], [], []),
    ],
)
def test_substrings_are_python_slices(texts, rows, starts, ends, expected):
    got = _substrings(
        tf.constant(texts), tf.constant(rows, tf.int64), tf.constant(starts, tf.int64), tf.constant(ends, tf.int64)
    )
    assert [t.decode("utf-8") for t in got.numpy().tolist()] == expected
    assert [texts[r][s:e] for r, s, e in zip(rows, starts, ends)] == expected


def _merge(contexts, example, starts, ends, scores, top_k, handle=None):
    n = len(contexts)
    return merge_answers(
        contexts=tf.constant(contexts, tf.string),
        example=tf.constant(example, tf.int64),
        char_starts=tf.constant(starts, tf.int64, shape=[len(example), len(starts[0]) if starts else 0]),
        char_ends=tf.constant(ends, tf.int64, shape=[len(example), len(ends[0]) if ends else 0]),
        scores=tf.constant(scores, tf.float32, shape=[len(example), len(scores[0]) if scores else 0]),
        valid=tf.constant(scores, tf.float32, shape=[len(example), len(scores[0]) if scores else 0]) > 0,
        null_scores=tf.fill([len(example)], 0.01),
        top_k=tf.constant(top_k, tf.int32, shape=[n]),
        handle_impossible_answer=tf.constant(handle or [False] * n, tf.bool, shape=[n]),
    )


def test_equal_texts_ignoring_case_merge_across_windows():
    merged = _merge(
        ["Paris or PARIS, Lyon"], [0, 0], [[0, 16], [9, 0]], [[5, 20], [14, 5]], [[0.3, 0.2], [0.25, 0.1]], [2]
    )
    assert merged.answer.numpy().tolist() == [[b"Paris", b"Lyon"]]
    assert merged.score.numpy()[0, 0] == pytest.approx(0.3 + 0.25 + 0.1)
    assert merged.start.numpy().tolist() == [[0, 16]]


def test_no_examples():
    merged = _merge([], [], [], [], [], [])
    assert merged.answer.shape.as_list() == [0, 1] and merged.score.dtype == tf.float32


@pytest.mark.parametrize(
    "a,b",
    [
        ("Paris", "PARIS"),
        ("Éclair", "éCLAIR"),
        ("a\x00B", "A\x00b"),
        ("a\x00b", "a\x00c"),
        ("a\x00", "a\x01\x03"),
        ("a\x01\x02", "a\x01"),
        ("x\x00\x00Y", "X\x00\x00y"),
        ("ΣΊΣΥΦΟΣ", "σίσυφοσ"),
        ("", "\x00"),
    ],
)
def test_lower_utf8_keys_are_equal_exactly_when_python_lower_is(a, b):
    keys = lower_utf8(tf.constant([a, b])).numpy()
    assert (keys[0] == keys[1]) == (a.lower() == b.lower())
