"""Merging the spans of every window of an example into its answers, as the pipeline's ``postprocess``.

For each example:

1. every window contributes its best ``2 * top_k + 10`` spans (``top_k`` when ``align_to_words`` is off),
   each mapped to a character span of the original context;
2. spans whose answer strings are equal ignoring case are merged into the first one seen, their scores
   summed (so even the top-1 answer depends on the extra candidates);
3. with ``handle_impossible_answer`` the empty answer (start = end = 0) is added once, scored with the
   smallest null score of the example's windows;
4. answers are sorted by score, best first (ties keep the order they were found in), and cut to ``top_k``.

The result is dense [B, K] with K the largest ``top_k`` of the batch; past an example's real answers the
rows hold the empty answer, score 0 and start = end = -1.

Example (one example, one window, two spans whose texts differ only in case):

>>> merged = merge_answers(
...     contexts=tf.constant(["Paris or paris"]), example=tf.constant([0], tf.int64),
...     char_starts=tf.constant([[0, 9]], tf.int64), char_ends=tf.constant([[5, 14]], tf.int64),
...     scores=tf.constant([[0.5, 0.25]]), valid=tf.constant([[True, True]]),
...     null_scores=tf.constant([0.1]), top_k=tf.constant([1]), handle_impossible_answer=tf.constant([False]))
>>> merged.answer.numpy().tolist(), merged.score.numpy().tolist()
([[b'Paris']], [[0.75]])
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf


class Answers(NamedTuple):
    """[B, K] answers, best first.

    Attributes:
        answer: tf.string, the answer text (empty for the null answer and for padding).
        score: float32.
        start, end: int64 character offsets into the context, end exclusive (0, 0 for the null answer,
            -1, -1 for padding).
        windows: [B] int32, the windows each example's context took through the model (its share of the work);
            None where the answers were merged without knowing them.
    """

    answer: tf.Tensor
    score: tf.Tensor
    start: tf.Tensor
    end: tf.Tensor
    windows: tf.Tensor | None = None


def lower_utf8(texts: tf.Tensor) -> tf.Tensor:
    """A lower-cased comparison key: equal exactly when Python's ``str.lower`` of the texts are equal.

    ``tf.strings.lower(encoding="utf-8")`` stops at the first NUL character, so NULs are first escaped
    injectively (byte 0x01 becomes 0x01 0x02, NUL becomes 0x01 0x03); lower-casing leaves those bytes alone.
    """
    escaped = tf.strings.regex_replace(texts, "\\x01", "\x01\x02")
    escaped = tf.strings.regex_replace(escaped, "\\x00", "\x01\x03")
    return tf.strings.lower(escaped, encoding="utf-8")


def _substrings(texts: tf.Tensor, row: tf.Tensor, start: tf.Tensor, end: tf.Tensor) -> tf.Tensor:
    """[S] ``texts[row][start:end]`` in characters, copying only the spans' own characters.

    ``tf.strings.substr`` would need each span's whole text gathered first: a copy of the context per span,
    which grows with the square of the context's length.
    """
    chars = tf.strings.unicode_decode(texts, "UTF-8")
    first = tf.gather(chars.row_starts(), row)
    indices = tf.ragged.range(first + start, first + end)
    return tf.strings.unicode_encode(tf.gather(chars.values, indices), "UTF-8")


def candidates_per_window(top_k: tf.Tensor, align_to_words: bool) -> tf.Tensor:
    """The pipeline's ``pre_topk``: spans each window contributes, per example."""
    return 2 * top_k + 10 if align_to_words else top_k


def merge_answers(
    contexts: tf.Tensor,
    example: tf.Tensor,
    char_starts: tf.Tensor,
    char_ends: tf.Tensor,
    scores: tf.Tensor,
    valid: tf.Tensor,
    null_scores: tf.Tensor,
    top_k: tf.Tensor,
    handle_impossible_answer: tf.Tensor,
) -> Answers:
    """Merges window spans into each example's top-k answers.

    Args:
        contexts: [B] tf.string, the original contexts.
        example: [W] int64, the example of each window (consecutive per example).
        char_starts, char_ends: [W, k] int64 character spans of the windows' spans, best first.
        scores: [W, k] float32.
        valid: [W, k] bool, False for spans not to consider (padding, or past the example's quota).
        null_scores: [W] float32.
        top_k: [B] int32, answers wanted per example.
        handle_impossible_answer: [B] bool.

    Returns:
        ``Answers`` of shape [B, max(top_k)].
    """
    num_examples = tf.shape(contexts, out_type=tf.int64)[0]
    # Spans in the pipeline's order: windows in order, best span first within a window. Gathered at tf.where's
    # indices: tf.boolean_mask and tf.repeat are a dozen small ops each, a fixed cost to a lone request.
    kept = tf.where(valid)  # [spans, 2]: window, rank
    span_example = tf.gather(example, kept[:, 0])
    span_start = tf.gather_nd(char_starts, kept)
    span_end = tf.gather_nd(char_ends, kept)
    spans = _Candidates(
        example=span_example,
        text=_substrings(contexts, span_example, span_start, span_end),
        start=span_start,
        end=span_end,
        score=tf.gather_nd(scores, kept),
    )
    candidates = _with_null_answers(_merge_equal_texts(spans), example, null_scores, handle_impossible_answer)
    return _best_first(candidates, tf.cast(top_k, tf.int64), num_examples)


class _Candidates(NamedTuple):
    """A flat list of answers of a batch, in the order found: each one's example, text, span and score."""

    example: tf.Tensor
    text: tf.Tensor
    start: tf.Tensor
    end: tf.Tensor
    score: tf.Tensor


def _merge_equal_texts(spans: _Candidates) -> _Candidates:
    """Same example and same lower-cased text: one answer, the first one seen, scores summed."""
    key = tf.strings.join([tf.strings.as_string(spans.example), lower_utf8(spans.text)], separator="\n")
    _, group = tf.unique(key, out_idx=tf.int64)
    num_groups = tf.reduce_max(tf.concat([group + 1, [0]], axis=0))
    first = tf.math.unsorted_segment_min(tf.range(tf.size(group, out_type=tf.int64)), group, num_groups)
    return _Candidates(
        example=tf.gather(spans.example, first),
        text=tf.gather(spans.text, first),
        start=tf.gather(spans.start, first),
        end=tf.gather(spans.end, first),
        score=tf.math.unsorted_segment_sum(spans.score, group, num_groups),
    )


def _with_null_answers(
    answers: _Candidates, example: tf.Tensor, null_scores: tf.Tensor, handle_impossible_answer: tf.Tensor
) -> _Candidates:
    """The null answer comes last, scored with the smallest null score of the example's windows."""
    num_examples = tf.size(handle_impossible_answer, out_type=tf.int64)
    null_example = tf.where(handle_impossible_answer)[:, 0]
    min_null = tf.math.unsorted_segment_min(null_scores, example, num_examples)
    nulls = _Candidates(
        example=null_example,
        text=tf.fill(tf.shape(null_example), ""),
        start=tf.zeros_like(null_example),
        end=tf.zeros_like(null_example),
        score=tf.gather(min_null, null_example),
    )
    return _Candidates(*(tf.concat([mine, theirs], axis=0) for mine, theirs in zip(answers, nulls)))


def _best_first(answers: _Candidates, top_k: tf.Tensor, num_examples: tf.Tensor) -> Answers:
    """Each example's ``top_k`` best answers, [B, max(top_k)]; stable sorts keep the found order between ties."""
    by_score = tf.argsort(-answers.score, stable=True)
    order = tf.gather(by_score, tf.argsort(tf.gather(answers.example, by_score), stable=True))
    counts = tf.math.unsorted_segment_sum(tf.ones_like(answers.example), answers.example, num_examples)
    first_of_example = tf.cumsum(counts, exclusive=True)
    width = tf.reduce_max(tf.concat([top_k, [1]], axis=0))  # at least 1, also for an empty batch
    rank = tf.range(width)[tf.newaxis, :]
    present = rank < tf.minimum(counts, top_k)[:, tf.newaxis]
    source = tf.where(present, first_of_example[:, tf.newaxis] + rank, 0)

    def take(values: tf.Tensor, missing) -> tf.Tensor:
        missing = tf.constant(missing, values.dtype)
        # One trailing entry keeps the gather in range when the batch has no answers at all.
        padded = tf.concat([tf.gather(values, order), [missing]], axis=0)
        return tf.where(present, tf.gather(padded, source), missing)

    return Answers(
        answer=take(answers.text, ""),
        score=take(answers.score, 0.0),
        start=take(answers.start, -1),
        end=take(answers.end, -1),
    )
