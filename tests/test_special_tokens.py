"""``find_special_tokens`` against a plain-Python scan, and its op count."""

import random

import pytest
import tensorflow as tf

from tf_qa.graph.special_tokens import find_special_tokens

BERT_TOKENS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}


def scanned(texts: list[str], tokens: dict[str, int]) -> tuple[list[int], list[bool]]:
    """Every exact match of every token within each text; the longest where two start at one place."""
    ids, covered = [], []
    for text in texts:
        text_ids, text_covered = [-1] * len(text), [False] * len(text)
        for token, token_id in sorted(tokens.items(), key=lambda item: len(item[0])):
            for start in range(len(text) - len(token) + 1):
                if text[start : start + len(token)] == token:
                    text_ids[start] = token_id
                    text_covered[start : start + len(token)] = [True] * len(token)
        ids += text_ids
        covered += text_covered
    return ids, covered


def found(texts: list[str], tokens: dict[str, int]) -> tuple[list[int], list[bool]]:
    code_points = tf.strings.unicode_decode(texts, "UTF-8")
    ids, covered = find_special_tokens(code_points.values, code_points.value_rowids(), tokens)
    return ids.numpy().tolist(), covered.numpy().tolist()


def random_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    pieces = ["[SEP]", "[sep]", "[SE", "P]", "[MASK]", "[CLS][SEP]", "[", "]", "a", " ", "é", "漢", "[UNK", "[[SEP]]"]
    return ["".join(rng.choices(pieces, k=rng.randint(0, 12))) for _ in range(count)]


@pytest.mark.parametrize(
    "texts",
    [
        ["x[SEP]y [sep]"],
        ["[CLS]", "[SEP]a[MASK]", "", "[PAD"],  # matches at both ends of a text, an empty text
        ["[SE", "P] [SEP"],  # a token's characters split across texts never match
        ["[[SEP]]", "[MASK][MASK]"],
        [""],
    ],
)
def test_matches_as_a_scan(texts):
    assert found(texts, BERT_TOKENS) == scanned(texts, BERT_TOKENS)


@pytest.mark.parametrize("seed", range(5))
def test_random_texts_match_as_a_scan(seed):
    texts = random_texts(seed, 40)
    assert found(texts, BERT_TOKENS) == scanned(texts, BERT_TOKENS)


@pytest.mark.parametrize("tokens", [{"<s>": 1, "<s>x": 2}, {"<s>x": 2, "<s>": 1}])
def test_the_longer_token_wins_where_one_is_a_prefix_of_another(tokens):
    """As the tokenizers library matches added tokens: leftmost, then longest."""
    assert found(["<s>x <s>"], tokens) == ([2, -1, -1, -1, -1, 1, -1, -1], [True] * 4 + [False] + [True] * 3)


def test_no_tokens():
    assert found(["[SEP]"], {}) == ([-1] * 5, [False] * 5)


def test_op_count_does_not_grow_with_the_tokens():
    def count_ops(tokens):
        graph = tf.function(lambda cp, rows: find_special_tokens(cp, rows, tokens)).get_concrete_function(
            tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int64)
        )
        return len(graph.graph.get_operations())

    assert count_ops(BERT_TOKENS) == count_ops({"[SEP]": 102})
    # A loop over the tokens and their characters made 840 graph ops for BERT's five tokens.
    assert count_ops(BERT_TOKENS) < 120


@pytest.mark.parametrize("order", [["<s>", "<s>x"], ["<s>x", "<s>"]])
def test_prefix_tokens_match_as_a_transformers_tokenizer_finds_them(order):
    from tokenizers import AddedToken
    from transformers import DistilBertTokenizerFast

    from tf_qa.checkpoints import BUNDLED_VOCAB
    from tf_qa.graph.special_tokens import special_tokens_of

    tokenizer = DistilBertTokenizerFast(str(BUNDLED_VOCAB))
    tokenizer.add_special_tokens({"additional_special_tokens": [AddedToken(t, normalized=False) for t in order]})
    tokens = special_tokens_of(tokenizer)
    text = "a<s>x <s> <s>xx"
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    expected = {
        start: i for i, (start, _) in zip(encoded["input_ids"], encoded["offset_mapping"]) if i in tokens.values()
    }
    ids, _ = found([text], tokens)
    assert {start: i for start, i in enumerate(ids) if i >= 0} == expected
