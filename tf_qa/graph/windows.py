"""Doc-stride windows: ``[CLS] question [SEP] context-window [SEP]``, as a transformers fast tokenizer makes them.

With ``truncation="only_second", max_length=max_seq_len, stride=doc_stride, return_overflowing_tokens=True``
a fast tokenizer keeps the whole question in every window and cuts the context into windows of
``room = max_seq_len - len(question) - 3`` tokens that start every ``room - doc_stride`` tokens, until one
reaches the end of the context. It refuses (raises) when the context must be cut and ``room <= doc_stride``.

Windows of a batch are padded with id 0 and mask 0 to the longest window of the batch only.

Example:

>>> q = tf.ragged.constant([[2054, 2003]])                    # "what is"
>>> c = tf.ragged.constant([list(range(1000, 1010))])         # 10 context tokens
>>> w = make_windows(q, c, max_seq_len=12, doc_stride=2, cls_id=101, sep_id=102)
>>> w.input_ids.shape.as_list(), w.example.numpy().tolist()
([2, 12], [0, 0])
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from tf_qa.graph import row_ids


class Windows(NamedTuple):
    """W windows made from B examples; L is the longest window of the batch.

    Attributes:
        input_ids: [W, L] int32, padded with 0.
        attention_mask: [W, L] int32.
        example: [W] int64, the example each window belongs to (windows of an example are consecutive).
        context_mask: [W, L] bool, True on context tokens.
        context_token: [W, L] int64, index of the position's token among its example's context tokens
            (-1 where the position is not a context token).
    """

    input_ids: tf.Tensor
    attention_mask: tf.Tensor
    example: tf.Tensor
    context_mask: tf.Tensor
    context_token: tf.Tensor


def _room_and_step(question_lengths, max_seq_len: int, doc_stride: int, maximum=tf.maximum):
    """Context tokens a window holds beside its question and 3 special tokens, and how far windows advance."""
    room = max_seq_len - question_lengths - 3
    return room, maximum(room - doc_stride, 1)


def question_too_long(
    question_ids: tf.RaggedTensor, context_ids: tf.RaggedTensor, *, max_seq_len: int, doc_stride: int
) -> tf.Tensor:
    """[B] bool: where the context must be cut but no window can hold more than ``doc_stride`` of its tokens."""
    return too_long_for_windows(
        question_ids.row_lengths(), context_ids.row_lengths(), max_seq_len=max_seq_len, doc_stride=doc_stride
    )


def too_long_for_windows(question_lengths, context_lengths, *, max_seq_len: int, doc_stride: int, maximum=tf.maximum):
    """``question_too_long`` from token counts; arithmetic only, like ``windows_per_example``."""
    room, _ = _room_and_step(question_lengths, max_seq_len, doc_stride, maximum)
    return (context_lengths > room) & (room <= doc_stride)


def windows_per_example(question_lengths, context_lengths, *, max_seq_len: int, doc_stride: int, maximum=tf.maximum):
    """[B] int: how many windows each example makes, from its token counts alone (nothing is allocated).

    Meaningful where ``question_too_long`` is False. Arithmetic only, so with ``maximum=np.maximum`` it counts
    NumPy arrays too (the server's admission estimates a request's windows with it before anything runs).
    """
    room, step = _room_and_step(question_lengths, max_seq_len, doc_stride, maximum)
    return 1 + (maximum(context_lengths - room, 0) + step - 1) // step


def _window_ids(
    question_ids, context_ids, example, position, context_index, c_begin, c_end, *, cls_id: int, sep_id: int
) -> tf.Tensor:
    """[W, L] ids: ``[CLS] question [SEP] context [SEP]`` then 0, by position (question at 1..c_begin-2)."""

    def gather_tokens(ids: tf.RaggedTensor, index: tf.Tensor) -> tf.Tensor:
        # A trailing 0 keeps the clipped gather in range even for an empty batch.
        values = tf.concat([tf.cast(ids.values, tf.int32), [0]], axis=0)
        return tf.gather(values, tf.clip_by_value(index, 0, tf.size(values, out_type=tf.int64) - 1))

    def row_start(ids: tf.RaggedTensor) -> tf.Tensor:
        return tf.gather(ids.row_starts(), example)[:, tf.newaxis]

    question_tokens = gather_tokens(question_ids, row_start(question_ids) + position - 1)
    context_tokens = gather_tokens(context_ids, row_start(context_ids) + context_index)
    q_end = c_begin - 2  # last question position
    return tf.where(
        position == 0,
        cls_id,
        tf.where(
            position <= q_end,
            question_tokens,
            tf.where(
                (position == q_end + 1) | (position == c_end),
                sep_id,
                tf.where((position >= c_begin) & (position < c_end), context_tokens, 0),
            ),
        ),
    )


def make_windows(
    question_ids: tf.RaggedTensor,
    context_ids: tf.RaggedTensor,
    *,
    max_seq_len: int,
    doc_stride: int,
    cls_id: int,
    sep_id: int,
) -> Windows:
    """Builds the model's input windows.

    Args:
        question_ids: ragged [B, (q)] token ids, every row non-empty.
        context_ids: ragged [B, (c)] token ids; rows where ``question_too_long`` is True must be rejected
            by the caller first.
        max_seq_len: tokens in a window, special tokens included.
        doc_stride: tokens shared by two consecutive windows.
        cls_id, sep_id: ids of the special tokens.

    Returns:
        ``Windows``.
    """
    q_len = question_ids.row_lengths()
    c_len = context_ids.row_lengths()
    room, step = _room_and_step(q_len, max_seq_len, doc_stride)
    num_windows = windows_per_example(q_len, c_len, max_seq_len=max_seq_len, doc_stride=doc_stride)

    example = row_ids.repeated_range(num_windows)
    index_in_example = tf.range(tf.size(example, out_type=tf.int64)) - tf.gather(
        tf.cumsum(num_windows, exclusive=True), example
    )
    window_start = index_in_example * tf.gather(step, example)
    window_q_len = tf.gather(q_len, example)
    window_len = tf.minimum(tf.gather(room, example), tf.gather(c_len, example) - window_start)
    seq_len = window_q_len + 3 + window_len
    max_len = tf.reduce_max(tf.concat([seq_len, [0]], axis=0))

    position = tf.range(max_len)[tf.newaxis, :]
    c_begin = window_q_len[:, tf.newaxis] + 2
    c_end = c_begin + window_len[:, tf.newaxis]  # position of the final [SEP]
    context_index = window_start[:, tf.newaxis] + position - c_begin
    input_ids = _window_ids(
        question_ids, context_ids, example, position, context_index, c_begin, c_end, cls_id=cls_id, sep_id=sep_id
    )
    is_context = (position >= c_begin) & (position < c_end)
    attention_mask = tf.cast(position < seq_len[:, tf.newaxis], tf.int32)
    return Windows(
        input_ids=input_ids,
        attention_mask=attention_mask,
        example=example,
        context_mask=is_context,
        context_token=tf.where(is_context, context_index, -1),
    )
