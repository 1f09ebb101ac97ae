"""Request limits in the graph: every limit and option is refused before the work it bounds; empty batches."""

from __future__ import annotations

import time

import numpy as np
import pytest
import tensorflow as tf

from tf_qa.graph.limits import RequestLimits
from tf_qa.graph.options import ExportOptions
from tf_qa.signatures import SERVING_DEFAULT, TOKEN_SPANS_SIGNATURE, TOP_K_SIGNATURE

LIMITS = RequestLimits(max_examples=4, max_text_bytes=20_000, max_windows=6, max_top_k=50)
WORDS = "the river city north south museum opened century built bridge Paris "


@pytest.fixture(scope="module")
def signatures(checkpoint_dir):
    from tf_qa.graph.model import QuestionAnsweringModel

    model = QuestionAnsweringModel.from_pretrained(checkpoint_dir, options=ExportOptions(limits=LIMITS))
    signatures = model.signatures()
    # Graph optimization happens on a function's first run: time the refusals, not that.
    _top_k(signatures, ["q?"], ["c"])
    _spans(signatures, [1, 4])
    return signatures


def _top_k(signatures, questions, contexts, top_k=1, max_answer_len=15):
    n = len(questions)
    return signatures[TOP_K_SIGNATURE](
        question=tf.constant(questions, tf.string),
        context=tf.constant(contexts, tf.string),
        top_k=tf.fill([n], top_k),
        max_answer_len=tf.fill([n], max_answer_len),
        handle_impossible_answer=tf.fill([n], False),
    )


def _spans(signatures, shape):
    zeros = tf.zeros(shape, tf.int32)
    return signatures[TOKEN_SPANS_SIGNATURE](input_ids=zeros, attention_mask=zeros)


# Each request is over exactly one limit; without the check its work would take seconds and gigabytes.
OVER_LIMIT = {
    "examples": (
        lambda s: _top_k(s, ["q?"] * 5, ["c"] * 5),
        "request has 5 examples, over the limit max_examples=4 (raise it with tf-qa export --max-examples)",
    ),
    "text bytes": (
        lambda s: _top_k(s, ["q?"], ["word " * 4000]),
        "request has 20002 bytes of question and context text, over the limit max_text_bytes=20000 "
        "(raise it with tf-qa export --max-text-bytes)",
    ),
    "windows": (
        lambda s: _top_k(s, ["q?"], [WORDS * 150]),
        "windows of up to 384 tokens, over the limit max_windows=6 (raise it with tf-qa export --max-windows)",
    ),
    "top_k": (
        lambda s: _top_k(s, ["q?"], ["c"], top_k=2**31 - 1),
        "top_k must be between 1 and 50 (raise the limit with tf-qa export --max-top-k); got] [2147483647",
    ),
    "token_spans windows": (
        lambda s: _spans(s, [7, 8]),
        "request has 7 windows, over the limit max_windows=6 (raise it with tf-qa export --max-windows)",
    ),
    "token_spans positions": (
        lambda s: _spans(s, [1, 100_000]),
        "input_ids has 100000 positions, more than the model's max_position_embeddings=512",
    ),
}


@pytest.mark.parametrize("case", sorted(OVER_LIMIT))
def test_over_a_limit_is_refused_naming_the_limit_the_value_and_the_option(signatures, case):
    request, message = OVER_LIMIT[case]
    started = time.monotonic()
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        request(signatures)
    elapsed = time.monotonic() - started
    print(f"{case}: refused in {elapsed * 1000:.1f} ms")
    assert message.replace("\\'", "'") in error.value.message.replace("\\'", "'")
    assert elapsed < 1.0


def test_at_the_limits_is_answered(signatures):
    out = _top_k(signatures, ["q?"] * 4, ["Paris is the capital of France."] * 3 + [WORDS * 50], top_k=50)
    assert out["answer"].shape.as_list() == [4, 50]
    assert out["answer"][0, 0].numpy() and int(out["start"][3, 0]) >= 0


def test_a_huge_max_answer_len_is_the_whole_window(signatures):
    context = "Paris is the capital and most populous city of France, on the Seine."
    huge = _top_k(signatures, ["Where?"], [context], top_k=5, max_answer_len=2**31 - 1)
    whole = _top_k(signatures, ["Where?"], [context], top_k=5, max_answer_len=384)
    for key in ("answer", "start", "end", "score"):
        np.testing.assert_array_equal(huge[key].numpy(), whole[key].numpy())


@pytest.mark.parametrize("shape", [[2, 0]])
def test_token_spans_needs_a_position(signatures, shape):
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one position"):
        _spans(signatures, shape)


@pytest.mark.parametrize(
    "name,inputs,expected",
    [
        (
            SERVING_DEFAULT,
            {"question": tf.zeros([0], tf.string), "context": tf.zeros([0], tf.string)},
            {
                "answer": ([0], tf.string),
                "score": ([0], tf.float32),
                "start": ([0], tf.int64),
                "end": ([0], tf.int64),
                "windows": ([0], tf.int32),
            },
        ),
        (
            TOP_K_SIGNATURE,
            {
                "question": tf.zeros([0], tf.string),
                "context": tf.zeros([0], tf.string),
                "top_k": tf.zeros([0], tf.int32),
                "max_answer_len": tf.zeros([0], tf.int32),
                "handle_impossible_answer": tf.zeros([0], tf.bool),
            },
            {
                "answer": ([0, 1], tf.string),
                "score": ([0, 1], tf.float32),
                "start": ([0, 1], tf.int64),
                "end": ([0, 1], tf.int64),
                "windows": ([0], tf.int32),
            },
        ),
        (
            TOKEN_SPANS_SIGNATURE,
            {"input_ids": tf.zeros([0, 0], tf.int32), "attention_mask": tf.zeros([0, 0], tf.int32)},
            {"start": ([0], tf.int64), "end": ([0], tf.int64), "score": ([0], tf.float32)},
        ),
    ],
)
def test_an_empty_batch_gets_empty_outputs(signatures, name, inputs, expected):
    out = signatures[name](**inputs)
    assert {k: (v.shape.as_list(), v.dtype) for k, v in out.items()} == expected


@pytest.mark.parametrize(
    "field,value",
    [("max_examples", 0), ("max_windows", -1), ("max_top_k", True), ("max_text_bytes", 2.5), ("max_windows", 2**31)],
)
def test_limits_must_be_positive_integers(field, value):
    with pytest.raises(ValueError, match=field):
        RequestLimits(**{field: value})
