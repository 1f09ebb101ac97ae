"""The in-graph WordPiece tokenizer gives the fast transformers tokenizer's ids and character offsets."""

from __future__ import annotations

import pytest
import tensorflow as tf

TEXTS = [
    "Café au lait?",
    "naïve résumé, 2½ cups of ﬁne flour",
    "中文字符 and 日本語のテキスト",
    "emoji 🥲 here; ΣΊΣΥΦΟΣ and İstanbul",
    "a\x00b NUL, \x07bell, zero\u200bwidth, \ufffd replacement, \ue000 private",
    "tab\tnew\nline\r\nand  double  spaces",
    "x" * 101 + " a word over the 100-character limit becomes one unknown token",
    "don't-stop (ok) [1,000.5] e.g. U.S.A.",
    "   ",
    "",
    "special tokens as written: a [SEP] b, x[CLS]y, [MASK]s [PAD] [UNK]; [[SEP]] and [sep] [SEP",
    "[SEP][SEP] São [MASK]",
]


@pytest.fixture(scope="module")
def tokenize(qa_model):
    return qa_model.tokenizer


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_ids_and_offsets_equal_the_fast_tokenizers(tokenize, hf_tokenizer, text):
    expected = hf_tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    tokens = tokenize(tf.constant([text]))
    assert tokens.token_ids.to_list()[0] == expected["input_ids"]
    assert list(zip(tokens.starts.to_list()[0], tokens.ends.to_list()[0])) == [
        tuple(span) for span in expected["offset_mapping"]
    ]


def test_word_offsets_cover_each_tokens_word(tokenize):
    tokens = tokenize(tf.constant(["unbelievable café"]))
    starts, ends = tokens.starts.to_list()[0], tokens.ends.to_list()[0]
    word_starts, word_ends = tokens.word_starts.to_list()[0], tokens.word_ends.to_list()[0]
    assert all(ws <= s and e <= we for s, e, ws, we in zip(starts, ends, word_starts, word_ends))
    assert {(ws, we) for ws, we in zip(word_starts, word_ends)} == {(0, 12), (13, 17)}


def test_a_batch_tokenizes_each_text_alone(tokenize):
    batch = tokenize(tf.constant(TEXTS))
    for row, text in enumerate(TEXTS):
        assert batch.token_ids.to_list()[row] == tokenize(tf.constant([text])).token_ids.to_list()[0]


def test_no_texts(tokenize):
    tokens = tokenize(tf.constant([], tf.string))
    assert tokens.token_ids.shape[0] == 0 and tokens.starts.shape[0] == 0
