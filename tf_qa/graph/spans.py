"""Argmax span extractor: start/end logits of a window to its best answer spans, in the graph.

Semantics of transformers 4.57 ``QuestionAnsweringPipeline`` (``select_starts_ends`` + ``decode_spans``):

1. Positions that are neither context tokens nor [CLS] (question, [SEP], padding) get logit -10000
   (not -inf, so they keep a tiny share of the softmax exactly as in the pipeline).
2. A softmax over the whole window for the start and for the end, [CLS] staying in the denominator.
3. The null score is ``P_start(CLS) * P_end(CLS)`` (used by ``handle_impossible_answer``); then the [CLS]
   probabilities are set to 0 without renormalising.
4. A span ``(s, e)`` scores ``P_start(s) * P_end(e)`` for ``s <= e <= s + max_answer_len - 1``.
5. The top ``k`` spans by score, best first (ties: the lower flat index first).

Unlike the pipeline, only spans whose start and end are both context tokens are returned; the pipeline may
also return score-0 artifacts that touch [CLS] or end before they start. Missing candidates are padded with
score 0 and ``valid`` False.

Example:

>>> extractor = SpanExtractor()
>>> logits = tf.constant([[0.0, 1.0, 3.0, 2.0]])
>>> spans = extractor(logits, logits, tf.constant([[False, True, True, True]]),
...                   tf.ones([1, 4], tf.int32), tf.constant([15]), 1)
>>> spans.starts.numpy().tolist(), spans.ends.numpy().tolist()
([[2]], [[2]])
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf
import tf_keras

#: Logit given to positions that cannot be part of an answer (the pipeline's value).
MASKED_LOGIT = -10000.0


class SpanCandidates(NamedTuple):
    """Best spans of W windows.

    Attributes:
        starts, ends: [W, k] int64 token positions in the window (end inclusive).
        scores: [W, k] float32.
        valid: [W, k] bool, False for padding past the window's real spans.
        null_scores: [W] float32, ``P_start(CLS) * P_end(CLS)``.
    """

    starts: tf.Tensor
    ends: tf.Tensor
    scores: tf.Tensor
    valid: tf.Tensor
    null_scores: tf.Tensor


class SpanExtractor(tf_keras.layers.Layer):
    """Top-k answer spans from start/end logits; pure TF ops, dynamic batch and length.

    Call arguments:
        start_logits, end_logits: [W, L] float.
        context_mask: [W, L] bool, True on context tokens.
        attention_mask: [W, L] int, 0 on padding.
        max_answer_len: [W] int, the longest span in tokens.
        k: scalar int, spans to return per window.

    Returns:
        ``SpanCandidates`` with k spans per window.
    """

    def __init__(self, **kwargs):
        super().__init__(trainable=False, **kwargs)

    def call(self, start_logits, end_logits, context_mask, attention_mask, max_answer_len, k) -> SpanCandidates:
        start_logits = tf.cast(start_logits, tf.float32)
        end_logits = tf.cast(end_logits, tf.float32)
        length = tf.shape(start_logits, out_type=tf.int64)[1]
        position = tf.range(length)[tf.newaxis, :]
        is_cls = position == 0
        candidate = (context_mask | is_cls) & (attention_mask != 0)

        start_probs = tf.nn.softmax(tf.where(candidate, start_logits, MASKED_LOGIT), axis=-1)
        end_probs = tf.nn.softmax(tf.where(candidate, end_logits, MASKED_LOGIT), axis=-1)
        # Column 0 ([CLS]) as [W, 1], or [0, 0] when there are no windows: the sum is [W] either way.
        null_scores = tf.reduce_sum(start_probs[:, :1] * end_probs[:, :1], axis=1)
        start_probs = tf.where(is_cls, 0.0, start_probs)
        end_probs = tf.where(is_cls, 0.0, end_probs)

        # Span (s, s + offset) for offsets below the longest answer asked for: [W, L, M] with M <= L, not
        # [W, L, L]. Flat indices s * M + offset keep the order of s * L + e, so ties break as before.
        max_answer_len = tf.cast(max_answer_len, tf.int64)
        band = tf.minimum(tf.reduce_max(tf.concat([max_answer_len, [1]], axis=0)), tf.maximum(length, 1))
        offset = tf.range(band)
        end_position = tf.range(length)[:, tf.newaxis] + offset[tf.newaxis, :]  # [L, M]
        past_the_end = [[0, 0], [0, band]]
        end_probs = tf.gather(tf.pad(end_probs, past_the_end), end_position, axis=1)
        end_in_context = tf.gather(tf.pad(context_mask, past_the_end), end_position, axis=1)
        allowed = (
            context_mask[:, :, tf.newaxis]
            & end_in_context
            & (offset[tf.newaxis, tf.newaxis, :] < max_answer_len[:, tf.newaxis, tf.newaxis])
        )
        span_scores = start_probs[:, :, tf.newaxis] * end_probs
        flat = tf.reshape(tf.where(allowed, span_scores, -1.0), [tf.shape(span_scores)[0], -1])
        k = tf.cast(k, tf.int32)
        k_found = tf.minimum(k, tf.shape(flat)[1])
        scores, index = tf.math.top_k(flat, k=k_found)
        padding = [[0, 0], [0, k - k_found]]
        scores = tf.pad(scores, padding, constant_values=-1.0)
        index = tf.cast(tf.pad(index, padding), tf.int64)
        starts = index // band
        valid = scores >= 0.0
        return SpanCandidates(
            starts=tf.where(valid, starts, -1),
            ends=tf.where(valid, starts + index % band, -1),
            scores=tf.maximum(scores, 0.0),
            valid=valid,
            null_scores=null_scores,
        )
