"""The span extractor: its [W, L, max_answer_len] band against the plain [W, L, L] search of the pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tf_qa.graph.spans import MASKED_LOGIT, SpanExtractor


def _brute_force(start_logits, end_logits, context_mask, attention_mask, max_answer_len, k):
    """Every (start, end) pair scored, then the k best by score (ties: lower start * L + end first)."""
    candidate = (context_mask | (np.arange(start_logits.shape[1]) == 0)) & (attention_mask != 0)
    start_probs = tf.nn.softmax(tf.where(candidate, start_logits, MASKED_LOGIT)).numpy()
    end_probs = tf.nn.softmax(tf.where(candidate, end_logits, MASKED_LOGIT)).numpy()
    start_probs[:, 0] = end_probs[:, 0] = 0.0
    results = []
    for w in range(start_logits.shape[0]):
        length = start_logits.shape[1]
        spans = [
            (-(start_probs[w, s] * end_probs[w, e]), s * length + e, s, e)
            for s in range(length)
            for e in range(s, min(length, s + max_answer_len[w]))
            if context_mask[w, s] and context_mask[w, e]
        ]
        results.append([(s, e, -score) for score, _, s, e in sorted(spans)[:k]])
    return results


@pytest.mark.parametrize(
    "seed,windows,length,max_len,k",
    [
        (0, 3, 12, 4, 5),
        (1, 2, 30, 15, 12),
        (2, 1, 7, 100, 60),
        (3, 4, 20, 1, 3),
        (4, 2, 9, 2, 40),
    ],
)
def test_band_matches_every_pair(seed, windows, length, max_len, k):
    rng = np.random.default_rng(seed)
    # Few distinct logit values make equal scores common, so the tie order is tested too.
    start_logits = rng.integers(-2, 3, [windows, length]).astype(np.float32)
    end_logits = rng.integers(-2, 3, [windows, length]).astype(np.float32)
    context_mask = rng.random([windows, length]) < 0.7
    context_mask[:, 0] = False
    attention_mask = np.ones([windows, length], np.int32)
    attention_mask[0, length - 2 :] = 0
    context_mask &= attention_mask.astype(bool)
    max_answer_len = np.array([max_len] + [max(1, max_len - 1)] * (windows - 1), np.int32)

    spans = SpanExtractor()(start_logits, end_logits, context_mask, attention_mask, max_answer_len, k)
    expected = _brute_force(start_logits, end_logits, context_mask, attention_mask, max_answer_len, k)
    for w in range(windows):
        found = int(spans.valid[w].numpy().sum())
        assert found == len(expected[w])
        assert [(int(s), int(e)) for s, e in zip(spans.starts[w, :found], spans.ends[w, :found])] == [
            (s, e) for s, e, _ in expected[w]
        ]
        np.testing.assert_array_equal(
            spans.scores[w, :found].numpy(), np.array([p for *_, p in expected[w]], np.float32)
        )
        assert spans.starts[w, found:].numpy().tolist() == [-1] * (k - found)


def test_no_windows():
    empty = tf.zeros([0, 0])
    spans = SpanExtractor()(
        empty, empty, tf.zeros([0, 0], tf.bool), tf.zeros([0, 0], tf.int32), tf.zeros([0], tf.int32), 3
    )
    assert spans.starts.shape.as_list() == [0, 3] and spans.null_scores.shape.as_list() == [0]
