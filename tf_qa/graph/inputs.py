"""The signatures' inputs, released only after the checks that bound the work on them (``tf_qa.graph.checks``).

Each function returns its inputs gated on waves of checks, cheapest first; a request over a limit of
``ExportOptions.limits`` or with bad values fails with InvalidArgumentError naming the problem and the batch row
before any of the work it would have caused.
"""

from __future__ import annotations

import tensorflow as tf

from tf_qa.graph import checks
from tf_qa.graph import windows as windows_lib
from tf_qa.graph.limits import export_flag
from tf_qa.graph.options import ExportOptions
from tf_qa.graph.tokenization import invalid_utf8


def checked_texts(options: ExportOptions, question, context, top_k, max_answer_len, handle_impossible_answer) -> list:
    """The ``answer`` inputs [B] with their defaults, released only after the checks that bound the work on them.

    Cheapest first: shapes, then one value per example (options, byte lengths), then UTF-8 (one pass
    over the bytes); each wave is built from the inputs the wave before released, so no check runs on an input
    over a limit.
    """
    inputs = _with_defaults(options, question, context, top_k, max_answer_len, handle_impossible_answer)
    inputs = checks.gate(inputs, _shape_checks(options, inputs))
    inputs = checks.gate(inputs, _value_checks(options, inputs))
    return checks.gate(inputs, _utf8_checks(inputs))


def _with_defaults(options: ExportOptions, question, context, top_k, max_answer_len, handle_impossible_answer):
    question = tf.convert_to_tensor(question, tf.string)
    context = tf.convert_to_tensor(context, tf.string)
    batch = tf.shape(question)[0]
    top_k = tf.ones([batch], tf.int32) if top_k is None else tf.cast(top_k, tf.int32)
    if max_answer_len is None:
        max_answer_len = tf.fill([batch], options.max_answer_len)
    if handle_impossible_answer is None:
        handle_impossible_answer = tf.fill([batch], options.handle_impossible_answer)
    return [question, context, top_k, tf.cast(max_answer_len, tf.int32), tf.cast(handle_impossible_answer, tf.bool)]


def _shape_checks(options: ExportOptions, inputs: list) -> list[tf.Operation]:
    batch = tf.shape(inputs[0])[0]
    sizes = tf.stack([tf.size(x) for x in inputs[1:]])
    return [
        checks.check(
            tf.reduce_all(sizes == batch),
            "question, context, top_k, max_answer_len and handle_impossible_answer must all have the same "
            "batch size; got question batch and then the others:",
            batch,
            sizes,
        ),
        checks.check_at_most(options.limits, "max_examples", batch, "examples"),
    ]


def _value_checks(options: ExportOptions, inputs: list) -> list[tf.Operation]:
    question, context, top_k, max_answer_len, _ = inputs
    # Byte lengths are read off the strings' headers; concatenating the texts first would copy them all.
    text_bytes = sum(tf.reduce_sum(tf.cast(tf.strings.length(texts), tf.int64)) for texts in (question, context))
    max_top_k = options.limits.max_top_k
    return [
        checks.check(
            tf.reduce_all(top_k >= 1) & tf.reduce_all(top_k <= max_top_k),
            f"top_k must be between 1 and {max_top_k} (raise the limit with tf-qa export "
            f"{export_flag('max_top_k')}); got",
            top_k,
        ),
        checks.check(tf.reduce_all(max_answer_len >= 1), "max_answer_len must be at least 1; got", max_answer_len),
        checks.check_at_most(options.limits, "max_text_bytes", text_bytes, "bytes of question and context text"),
    ]


def _utf8_checks(inputs: list) -> list[tf.Operation]:
    bad_question, bad_context = invalid_utf8(inputs[0]), invalid_utf8(inputs[1])
    return [
        checks.check(
            ~tf.reduce_any(bad_question), "question is not valid UTF-8 at batch index", checks.bad_rows(bad_question)
        ),
        checks.check(
            ~tf.reduce_any(bad_context), "context is not valid UTF-8 at batch index", checks.bad_rows(bad_context)
        ),
    ]


def checked_token_ids(options: ExportOptions, question_ids: tf.RaggedTensor, context_ids: tf.RaggedTensor) -> list:
    """Question and context token ids, released once each example can make windows within the limits."""
    question_lengths, context_lengths = question_ids.row_lengths(), context_ids.row_lengths()
    empty_question, empty_context = question_lengths == 0, context_lengths == 0
    max_seq_len, doc_stride = options.max_seq_len, options.doc_stride
    too_long = windows_lib.question_too_long(question_ids, context_ids, max_seq_len=max_seq_len, doc_stride=doc_stride)
    windows = windows_lib.windows_per_example(
        question_lengths, context_lengths, max_seq_len=max_seq_len, doc_stride=doc_stride
    )
    total_windows = tf.reduce_sum(tf.where(too_long, tf.zeros_like(windows), windows))
    return checks.gate(
        [question_ids, context_ids],
        [
            checks.check(
                ~tf.reduce_any(empty_question),
                "question is empty or whitespace-only (no tokens) at batch index",
                checks.bad_rows(empty_question),
            ),
            checks.check(
                ~tf.reduce_any(empty_context),
                "context is empty or whitespace-only (no tokens) at batch index",
                checks.bad_rows(empty_context),
            ),
            checks.check(
                ~tf.reduce_any(too_long),
                f"question is too long: with max_seq_len={max_seq_len} and doc_stride="
                f"{doc_stride} no window has room for more than doc_stride context tokens; "
                "question tokens at batch index",
                checks.bad_rows(too_long),
                tf.boolean_mask(question_lengths, too_long),
            ),
            checks.check_at_most(
                options.limits, "max_windows", total_windows, f"windows of up to {max_seq_len} tokens"
            ),
        ],
    )


def checked_windows(
    options: ExportOptions, input_ids: tf.Tensor, attention_mask: tf.Tensor, *, vocab_size: int, max_positions: int
) -> list:
    """``token_spans``' inputs [W, L], released after the shape checks and then the value checks."""
    input_ids = tf.cast(input_ids, tf.int32)
    attention_mask = tf.cast(attention_mask, tf.int32)
    ids_shape, mask_shape = tf.shape(input_ids), tf.shape(attention_mask)
    inputs = checks.gate(
        [input_ids, attention_mask],
        [
            checks.check(
                tf.reduce_all(ids_shape == mask_shape),
                "input_ids and attention_mask must have the same shape; got",
                ids_shape,
                mask_shape,
            ),
            checks.check_at_most(options.limits, "max_windows", ids_shape[0], "windows"),
            checks.check((ids_shape[0] == 0) | (ids_shape[1] >= 1), "input_ids must have at least one position"),
            checks.check(
                ids_shape[1] <= max_positions,
                tf.strings.format(
                    "input_ids has {} positions, more than the model's "
                    f"max_position_embeddings={max_positions} (fixed by the checkpoint)",
                    [ids_shape[1]],
                ),
            ),
        ],
    )
    input_ids, attention_mask = inputs
    return checks.gate(
        inputs,
        [
            checks.check(tf.reduce_all((attention_mask == 0) | (attention_mask == 1)), "attention_mask must be 0 or 1"),
            checks.check(
                tf.reduce_all(input_ids >= 0) & tf.reduce_all(input_ids < vocab_size),
                f"input_ids must be in [0, {vocab_size})",
            ),
        ],
    )
