"""Doc-stride windows equal the fast tokenizer's overflowing windows, token for token."""

from __future__ import annotations

import pytest
import tensorflow as tf

from tf_qa.graph.windows import make_windows, question_too_long, windows_per_example

WORDS = "the city river museum north south king bridge".split()  # one token each


def _text(n: int, offset: int) -> str:
    return " ".join(WORDS[(offset + i) % len(WORDS)] for i in range(n))


def _ids(hf_tokenizer, texts):
    return tf.ragged.constant([hf_tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts], tf.int32)


@pytest.mark.parametrize(
    "question_words,context_words,max_seq_len,doc_stride",
    [
        ([2], [10], 12, 2),  # two windows
        ([3], [4], 12, 2),  # fits in one
        ([1, 5], [40, 7], 16, 4),  # a batch: several windows, then one
        ([6], [30], 16, 6),  # room 7, step 1
        ([2], [384], 384, 128),  # the pipeline's settings
    ],
)
def test_windows_equal_the_tokenizers(hf_tokenizer, question_words, context_words, max_seq_len, doc_stride):
    questions = [_text(n, 0) for n in question_words]
    contexts = [_text(n, 3) for n in context_words]
    windows = make_windows(
        _ids(hf_tokenizer, questions),
        _ids(hf_tokenizer, contexts),
        max_seq_len=max_seq_len,
        doc_stride=doc_stride,
        cls_id=hf_tokenizer.cls_token_id,
        sep_id=hf_tokenizer.sep_token_id,
    )
    expected, expected_example = [], []
    for example, (question, context) in enumerate(zip(questions, contexts)):
        encoded = hf_tokenizer(
            question,
            context,
            truncation="only_second",
            max_length=max_seq_len,
            stride=doc_stride,
            return_overflowing_tokens=True,
        )
        expected += encoded["input_ids"]
        expected_example += [example] * len(encoded["input_ids"])
    mask = windows.attention_mask.numpy().astype(bool)
    assert [row[keep].tolist() for row, keep in zip(windows.input_ids.numpy(), mask)] == expected
    assert windows.example.numpy().tolist() == expected_example
    counts = windows_per_example(
        tf.constant([len(hf_tokenizer(q)["input_ids"]) - 2 for q in questions], tf.int64),
        tf.constant(context_words, tf.int64),
        max_seq_len=max_seq_len,
        doc_stride=doc_stride,
    )
    assert counts.numpy().tolist() == [expected_example.count(e) for e in range(len(questions))]


def test_context_mask_marks_exactly_the_context_tokens(hf_tokenizer):
    windows = make_windows(
        _ids(hf_tokenizer, ["the city"]),
        _ids(hf_tokenizer, [_text(10, 3)]),
        max_seq_len=12,
        doc_stride=2,
        cls_id=101,
        sep_id=102,
    )
    # [CLS] q q [SEP] c*7 [SEP]; the second window starts 5 context tokens later.
    assert windows.context_token.numpy().tolist() == [
        [-1, -1, -1, -1, 0, 1, 2, 3, 4, 5, 6, -1],
        [-1, -1, -1, -1, 5, 6, 7, 8, 9, -1, -1, -1],
    ]
    assert (windows.context_mask.numpy() == (windows.context_token.numpy() >= 0)).all()


def test_a_question_that_leaves_no_room_is_flagged_as_the_tokenizer_refuses_it(hf_tokenizer):
    question, context = _text(8, 0), _text(20, 3)
    assert question_too_long(
        _ids(hf_tokenizer, [question]), _ids(hf_tokenizer, [context]), max_seq_len=16, doc_stride=6
    ).numpy().tolist() == [True]
    with pytest.raises(BaseException, match="stride"):  # a Rust panic, not an Exception
        hf_tokenizer(
            question, context, truncation="only_second", max_length=16, stride=6, return_overflowing_tokens=True
        )


def test_no_examples():
    empty = tf.ragged.constant([], tf.int32, ragged_rank=1)
    windows = make_windows(empty, empty, max_seq_len=12, doc_stride=2, cls_id=101, sep_id=102)
    assert windows.input_ids.shape.as_list() == [0, 0] and windows.example.shape.as_list() == [0]
