"""Normalizer tables read off the checkpoint's own normalizer and pre-tokenizer."""

from __future__ import annotations

import numpy as np
import pytest
from tokenizers import normalizers, pre_tokenizers

from tf_qa.graph.normalization import ISOLATED, KEEP, REMOVED, SEPARATOR, WORD_CHAR, build_normalizer_tables


@pytest.fixture(scope="module")
def tables():
    return build_normalizer_tables(normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer())


def _replacement(tables, char: str) -> str:
    index = np.searchsorted(tables.map_keys, ord(char))
    if index == len(tables.map_keys) or tables.map_keys[index] != ord(char):
        return char
    return "".join(chr(c) for c in tables.map_values[index][: tables.map_lengths[index]])


def _run_length_value(starts, values, char: str) -> int:
    return int(values[np.searchsorted(starts, ord(char), side="right") - 1])


@pytest.mark.parametrize(
    "char,replacement",
    [
        ("É", "e"),
        ("A", "a"),
        ("ﬁ", "ﬁ"),
        ("½", "½"),
        ("a", "a"),
        ("İ", "i"),
    ],
)
def test_replacements_are_the_normalizers(tables, char, replacement):
    assert _replacement(tables, char) == replacement
    assert normalizers.BertNormalizer(lowercase=True).normalize_str(char) == replacement


@pytest.mark.parametrize(
    "char,source_class",
    [
        ("a", KEEP),
        ("\x00", REMOVED),
        ("\ufffd", REMOVED),
        ("\u200b", REMOVED),
        ("\x07", REMOVED),
        ("中", ISOLATED),
    ],
)
def test_original_characters_are_kept_removed_or_isolated(tables, char, source_class):
    assert _run_length_value(tables.source_starts, tables.source_values, char) == source_class


@pytest.mark.parametrize(
    "char,char_class",
    [
        ("a", WORD_CHAR),
        (" ", SEPARATOR),
        ("\t", SEPARATOR),
        ("\u3000", SEPARATOR),
        ("!", ISOLATED),
        ("$", ISOLATED),
        ("é", WORD_CHAR),
    ],
)
def test_normalized_characters_are_word_separator_or_punctuation(tables, char, char_class):
    assert _run_length_value(tables.class_starts, tables.class_values, char) == char_class


def test_tables_are_sorted_int32(tables):
    assert np.all(np.diff(tables.map_keys) > 0) and np.all(np.diff(tables.source_starts) > 0)
    assert {a.dtype for a in (tables.map_keys, tables.map_values, tables.source_starts, tables.class_values)} == {
        np.dtype(np.int32)
    }
