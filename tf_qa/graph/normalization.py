"""Lookup tables that reproduce transformers' BERT normalization and pre-tokenization in a TF graph.

TF Text's own BERT normalization (`lower_case_nfd_strip_accents`, `case_fold_utf8`) applies Unicode
*compatibility* decomposition, so ``2½`` becomes ``21⁄2`` where transformers keeps ``2 ##½``. Instead of
re-deriving the rules from ``unicodedata`` (whose Unicode version differs from the Rust crates behind
``tokenizers``), the tables are read off the checkpoint's own ``tokenizers`` normalizer and pre-tokenizer by
probing every code point once (about a second). The result is three sorted tables that the graph looks
up with ``tf.searchsorted``, so only core TensorFlow ops are needed.

Per original code point ``c`` the normalizer yields a string ``n(c)``:

* ``""``: removed (control, format and private-use characters, U+FFFD, ...);
* ``" "``: whitespace, a word separator;
* ``" x "``: a CJK character, isolated as its own word (``x`` is ``c`` normalized);
* anything else: the characters that replace ``c`` (NFD, accents stripped, lower-cased), up to 3.

Normalization is applied per code point; the only context-sensitive step of NFD, canonical reordering of
combining marks, is invisible here because the marks that it reorders are stripped.

Example:

>>> from tokenizers import normalizers, pre_tokenizers
>>> tables = build_normalizer_tables(
...     normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer())
>>> int(tables.map_lengths[np.searchsorted(tables.map_keys, ord("É"))])
1
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: Classes of a *normalized* character for pre-tokenization.
WORD_CHAR, SEPARATOR, ISOLATED = 0, 1, 2
#: Classes of an *original* character for normalization (ISOLATED shared with the above).
KEEP, REMOVED = 0, 1

_MAX_CODE_POINT = 0x110000
_SURROGATES = range(0xD800, 0xE000)


@dataclasses.dataclass(frozen=True)
class NormalizerTables:
    """Sorted lookup tables; every array is int32.

    Attributes:
        map_keys: [M] code points whose normalized form differs from themselves.
        map_values: [M, 3] their replacement code points, padded with -1.
        map_lengths: [M] number of replacement code points (1 to 3).
        source_starts, source_values: run-length table over original code points giving KEEP,
            REMOVED (dropped by the normalizer) or ISOLATED (a word of its own: CJK).
        class_starts, class_values: run-length table over normalized code points giving
            WORD_CHAR, SEPARATOR (whitespace, dropped by the pre-tokenizer) or ISOLATED (punctuation).
    """

    map_keys: np.ndarray
    map_values: np.ndarray
    map_lengths: np.ndarray
    source_starts: np.ndarray
    source_values: np.ndarray
    class_starts: np.ndarray
    class_values: np.ndarray


def _run_length(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compresses a per-code-point array into (run starts, run values)."""
    change = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate([[0], change]).astype(np.int32)
    return starts, values[starts].astype(np.int32)


def _code_points() -> list[int]:
    return [cp for cp in range(_MAX_CODE_POINT) if cp not in _SURROGATES]


def build_normalizer_tables(normalizer, pre_tokenizer) -> NormalizerTables:
    """Probes a ``tokenizers`` normalizer and pre-tokenizer over every Unicode scalar value.

    Args:
        normalizer: a ``tokenizers.normalizers.Normalizer`` (BertNormalizer for BERT-family checkpoints).
        pre_tokenizer: a ``tokenizers.pre_tokenizers.PreTokenizer`` that splits on whitespace and isolates
            punctuation (BertPreTokenizer).

    Returns:
        The tables the in-graph tokenizer looks up.
    """
    keys, values, lengths = [], [], []
    source_class = np.zeros(_MAX_CODE_POINT, np.int32)
    for cp in _code_points():
        char = chr(cp)
        normalized = normalizer.normalize_str(char)
        if normalized == char:
            continue
        if not normalized:
            source_class[cp] = REMOVED
            continue
        if len(normalized) >= 3 and normalized[0] == " " and normalized[-1] == " ":
            source_class[cp] = ISOLATED
            normalized = normalized.strip(" ")
            if normalized == char:
                continue
        if len(normalized) > 3:
            raise ValueError(f"U+{cp:04X} normalizes to {len(normalized)} characters; at most 3 are supported")
        keys.append(cp)
        lengths.append(len(normalized))
        values.append([ord(c) for c in normalized] + [-1] * (3 - len(normalized)))

    char_class = _probe_pre_tokenizer_classes(pre_tokenizer)
    source_starts, source_values = _run_length(source_class)
    class_starts, class_values = _run_length(char_class)
    return NormalizerTables(
        map_keys=np.asarray(keys, np.int32),
        map_values=np.asarray(values, np.int32).reshape(-1, 3),
        map_lengths=np.asarray(lengths, np.int32),
        source_starts=source_starts,
        source_values=source_values,
        class_starts=class_starts,
        class_values=class_values,
    )


def _probe_pre_tokenizer_classes(pre_tokenizer, chunk: int = 4096) -> np.ndarray:
    """Classifies every code point as the pre-tokenizer treats it.

    Each probed character stands between two ``a``s: a word character joins them into one piece, a
    separator is dropped (covered by no piece) and punctuation comes back as a piece of its own.
    """
    char_class = np.zeros(_MAX_CODE_POINT, np.int32)
    code_points = _code_points()
    for begin in range(0, len(code_points), chunk):
        batch = code_points[begin : begin + chunk]
        probe = "a" + "".join(chr(cp) + "a" for cp in batch)
        covered = np.zeros(len(probe), bool)
        alone = np.zeros(len(probe), bool)
        for piece, (start, end) in pre_tokenizer.pre_tokenize_str(probe):
            covered[start:end] = True
            if end - start == 1 and piece != "a":
                alone[start] = True
        positions = np.arange(1, 2 * len(batch), 2)
        cps = np.asarray(batch)
        char_class[cps[~covered[positions]]] = SEPARATOR
        char_class[cps[alone[positions]]] = ISOLATED
    return char_class
