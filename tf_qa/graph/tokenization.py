"""In-graph WordPiece tokenizer with transformers' BERT normalization and character offsets.

The layer reproduces what a transformers *fast* BERT tokenizer does to one string: BertNormalizer (clean
text, isolate CJK, NFD + strip accents, lower-case), BertPreTokenizer (split on whitespace, isolate
punctuation) and greedy longest-match WordPiece with a word-length limit. It returns token ids together with
the **character** offsets of every token and of the word it belongs to, both pointing into the original
string, which is what the answer spans are mapped back to.

Only core TensorFlow ops and TF Text's ``FastWordpieceTokenizeWithOffsets`` (linked into
``tensorflow_model_server``) end up in the graph.

Example:

>>> from transformers import DistilBertTokenizerFast
>>> hf = DistilBertTokenizerFast("vocab.txt")                      # doctest: +SKIP
>>> layer = WordPieceTokenizer.from_transformers(hf)               # doctest: +SKIP
>>> tokens = layer(tf.constant(["Café au lait?"]))                 # doctest: +SKIP
>>> tokens.token_ids.to_list(), tokens.starts.to_list(), tokens.ends.to_list()   # doctest: +SKIP
([[7668, 8740, 21110, 2102, 1029]], [[0, 5, 8, 11, 12]], [[4, 7, 11, 12, 13]])
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf
import tensorflow_text as tf_text
import tf_keras

from tf_qa.graph import normalization, row_ids, special_tokens


class TokenizedText(NamedTuple):
    """Tokens of a batch of N strings; every field is a ragged [N, (tokens)] tensor.

    ``starts``/``ends`` are the token's character span in the original string (end exclusive), as
    transformers' ``offset_mapping``; ``word_starts``/``word_ends`` are the character span of the
    pre-tokenized word that the token is part of, as ``Encoding.word_to_chars``.
    """

    token_ids: tf.RaggedTensor
    starts: tf.RaggedTensor
    ends: tf.RaggedTensor
    word_starts: tf.RaggedTensor
    word_ends: tf.RaggedTensor


class _NormalizedChars(NamedTuple):
    """Normalized characters of a batch, flat: each one's text row, original character index, whether its
    original character is isolated as a word of its own (CJK), and whether it is part of a special token written
    in the text (with the token's id on its first character, -1 elsewhere)."""

    chars: tf.Tensor
    rows: tf.Tensor
    local: tf.Tensor
    isolated: tf.Tensor
    in_special: tf.Tensor
    special: tf.Tensor


class _Words(NamedTuple):
    """Pre-tokenized words of a batch, flat: their kept characters (``chars``, ``local``), each word's first and
    last index into them, text row, character span in the original string and UTF-8 text."""

    chars: tf.Tensor
    local: tf.Tensor
    first: tf.Tensor
    last: tf.Tensor
    rows: tf.Tensor
    starts: tf.Tensor
    ends: tf.Tensor
    text: tf.Tensor
    special: tf.Tensor


def _exclusive_cumsum(x: tf.Tensor) -> tf.Tensor:
    return tf.cumsum(x, exclusive=True)


def _run_length_lookup(starts: tf.Tensor, values: tf.Tensor, keys: tf.Tensor) -> tf.Tensor:
    """Value of the run that contains each key; ``starts`` is sorted and begins at 0."""
    return tf.gather(values, tf.searchsorted(starts, keys, side="right") - 1)


def _utf8_length(code_points: tf.Tensor) -> tf.Tensor:
    one = tf.ones_like(code_points)
    zero = tf.zeros_like(code_points)
    return (
        one
        + tf.where(code_points >= 0x80, one, zero)
        + tf.where(code_points >= 0x800, one, zero)
        + tf.where(code_points >= 0x10000, one, zero)
    )


class WordPieceTokenizer(tf_keras.layers.Layer):
    """Tokenizes strings exactly as a transformers fast BERT tokenizer, with character offsets.

    Args:
        vocabulary: the WordPiece vocabulary, in id order.
        tables: normalization tables built from the checkpoint's normalizer and pre-tokenizer.
        unknown_token: the token for words that cannot be split into vocabulary pieces.
        suffix_indicator: prefix of word-continuation pieces.
        max_chars_per_word: words longer than this (in characters) become ``unknown_token``.
        special_tokens: token text -> id of the tokens found in the text as written, each one token
            (``tf_qa.graph.special_tokens``).

    Call arguments:
        texts: [N] tf.string, UTF-8. Callers validate the encoding first (see ``invalid_utf8``).

    Returns:
        A ``TokenizedText`` of ragged [N, (tokens)] tensors.
    """

    def __init__(
        self,
        vocabulary: list[str],
        tables: normalization.NormalizerTables,
        unknown_token: str = "[UNK]",
        suffix_indicator: str = "##",
        max_chars_per_word: int = 100,
        special_tokens: dict[str, int] | None = None,
        **kwargs,
    ):
        super().__init__(trainable=False, **kwargs)
        self.vocabulary = list(vocabulary)
        # Pairs, not a dict: Keras would track a dict attribute as a layer's dependency.
        self.special_tokens = tuple(sorted((special_tokens or {}).items()))
        self.unknown_id = self.vocabulary.index(unknown_token)
        self.max_chars_per_word = max_chars_per_word
        # A word of max_chars_per_word characters has at most 4 bytes a character: the byte limit of
        # FastWordpiece never fires first, the character limit (transformers' rule) is applied below.
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=self.vocabulary,
            suffix_indicator=suffix_indicator,
            max_bytes_per_word=4 * max_chars_per_word,
            token_out_type=tf.int32,
            unknown_token=unknown_token,
            no_pretokenization=True,
            support_detokenization=False,
        )
        self._map_keys = tf.constant(tables.map_keys)
        self._map_values = tf.constant(tables.map_values)
        self._map_lengths = tf.constant(tables.map_lengths)
        self._source_starts = tf.constant(tables.source_starts)
        self._source_values = tf.constant(tables.source_values)
        self._class_starts = tf.constant(tables.class_starts)
        self._class_values = tf.constant(tables.class_values)

    @classmethod
    def from_transformers(cls, tokenizer, **kwargs) -> WordPieceTokenizer:
        """Builds the layer from a transformers fast tokenizer (its vocab, normalizer and pre-tokenizer)."""
        backend = tokenizer.backend_tokenizer
        model = backend.model
        vocab = backend.get_vocab(with_added_tokens=False)
        vocabulary = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
        if [vocab[t] for t in vocabulary] != list(range(len(vocabulary))):
            raise ValueError("the tokenizer's vocabulary ids are not contiguous from 0")
        tables = normalization.build_normalizer_tables(backend.normalizer, backend.pre_tokenizer)
        return cls(
            vocabulary,
            tables,
            unknown_token=model.unk_token,
            suffix_indicator=model.continuing_subword_prefix,
            max_chars_per_word=model.max_input_chars_per_word,
            special_tokens=special_tokens.special_tokens_of(tokenizer),
            **kwargs,
        )

    def call(self, texts: tf.Tensor) -> TokenizedText:
        texts = tf.convert_to_tensor(texts, tf.string)
        words = self._pre_tokenize(self._normalize(texts))
        piece_ids, piece_starts, piece_ends = self._word_pieces(words)
        return self._tokens(words, piece_ids, piece_starts, piece_ends, tf.shape(texts, out_type=tf.int64)[0])

    def _normalize(self, texts: tf.Tensor) -> _NormalizedChars:
        """BertNormalizer per code point: every original character becomes 0 to 3 normalized characters."""
        code_points = tf.strings.unicode_decode(texts, "UTF-8", errors="replace")
        source = code_points.values
        source_rows = row_ids.value_row_ids(code_points)
        source_local = tf.range(tf.size(source, out_type=tf.int64)) - tf.gather(code_points.row_starts(), source_rows)
        special, in_special = special_tokens.find_special_tokens(source, source_rows, dict(self.special_tokens))
        # A special token in the text is kept as written: the normalizer never sees it.
        source_class = tf.where(
            in_special, normalization.KEEP, _run_length_lookup(self._source_starts, self._source_values, source)
        )
        map_index = tf.minimum(tf.searchsorted(self._map_keys, source, side="left"), tf.size(self._map_keys) - 1)
        mapped = (tf.gather(self._map_keys, map_index) == source) & ~in_special
        lengths = tf.where(mapped, tf.gather(self._map_lengths, map_index), 1)
        lengths = tf.where(source_class == normalization.REMOVED, 0, lengths)
        origin = row_ids.repeated_range(lengths)  # original char of each normalized char
        within = tf.range(tf.size(origin)) - tf.gather(_exclusive_cumsum(lengths), origin)
        replacement = tf.gather_nd(self._map_values, tf.stack([tf.gather(map_index, origin), within], axis=1))
        return _NormalizedChars(
            chars=tf.where(tf.gather(mapped, origin), replacement, tf.gather(source, origin)),
            rows=tf.gather(source_rows, origin),
            local=tf.gather(source_local, origin),
            isolated=tf.gather(source_class, origin) == normalization.ISOLATED,
            in_special=tf.gather(in_special, origin),
            special=tf.gather(special, origin),
        )

    def _pre_tokenize(self, normalized: _NormalizedChars) -> _Words:
        """BertPreTokenizer: whitespace separates words, punctuation and CJK are words of their own."""
        chars, rows, local = normalized.chars, normalized.rows, normalized.local
        char_class = _run_length_lookup(self._class_starts, self._class_values, chars)
        char_class = tf.where(normalized.isolated, normalization.ISOLATED, char_class)
        char_class = tf.where(normalized.in_special, normalization.WORD_CHAR, char_class)
        previous_class = tf.concat([[normalization.SEPARATOR], char_class[:-1]], axis=0)
        previous_row = tf.concat([[-1], rows[:-1]], axis=0)
        previous_in_special = tf.concat([[False], normalized.in_special[:-1]], axis=0)
        starts_word = (char_class == normalization.ISOLATED) | (
            (char_class == normalization.WORD_CHAR)
            & ((previous_class != normalization.WORD_CHAR) | (previous_row != rows) | previous_in_special)
        )
        # A special token is a word of its own, whatever stands beside it.
        starts_word = tf.where(normalized.in_special, normalized.special >= 0, starts_word)
        # Gathered at tf.where's indices: each tf.boolean_mask is a dozen small ops.
        kept = tf.where(char_class != normalization.SEPARATOR)[:, 0]
        chars = tf.gather(chars, kept)
        rows = tf.gather(rows, kept)
        local = tf.gather(local, kept)
        special = tf.gather(normalized.special, kept)
        word_of_char = tf.cumsum(tf.cast(tf.gather(starts_word, kept), tf.int32)) - 1
        num_words = tf.reduce_max(tf.concat([word_of_char + 1, [0]], axis=0))  # ids run 0..n-1 in order
        first = tf.math.unsorted_segment_min(tf.range(tf.size(chars)), word_of_char, num_words)
        last = tf.math.unsorted_segment_max(tf.range(tf.size(chars)), word_of_char, num_words)
        text = tf.strings.unicode_encode(
            row_ids.from_sorted_row_ids(chars, word_of_char, num_words),
            "UTF-8",
        )
        return _Words(
            chars=chars,
            local=local,
            first=first,
            last=last,
            rows=tf.gather(rows, first),
            starts=tf.gather(local, first),
            ends=tf.gather(local, last) + 1,
            text=text,
            special=tf.gather(special, first),
        )

    def _word_pieces(self, words: _Words) -> tuple[tf.RaggedTensor, tf.Tensor, tf.Tensor]:
        """WordPiece ids [words, (pieces)], with each piece's character span in the original string."""
        pieces, piece_byte_starts, piece_byte_ends = self._wordpiece.tokenize_with_offsets(words.text)
        # Offsets come back in bytes within the word; turn them into characters of the original.
        char_byte_starts = _exclusive_cumsum(_utf8_length(words.chars))
        piece_base = tf.gather(tf.gather(char_byte_starts, words.first), row_ids.value_row_ids(pieces))
        first_char = (
            tf.searchsorted(char_byte_starts, piece_base + tf.cast(piece_byte_starts.values, tf.int32), side="right")
            - 1
        )
        last_char = (
            tf.searchsorted(char_byte_starts, piece_base + tf.cast(piece_byte_ends.values, tf.int32), side="left") - 1
        )
        return pieces, tf.gather(words.local, first_char), tf.gather(words.local, last_char) + 1

    def _tokens(
        self,
        words: _Words,
        pieces: tf.RaggedTensor,
        piece_starts: tf.Tensor,
        piece_ends: tf.Tensor,
        num_texts: tf.Tensor,
    ) -> TokenizedText:
        """Pieces as tokens per text. A special token written in the text is one token, its own id; a word over
        the word limit (transformers counts it in characters) is one unknown token."""
        too_long = (words.last - words.first + 1) > self.max_chars_per_word
        one_token = too_long | (words.special >= 0)
        new_lengths = tf.where(one_token, tf.ones_like(pieces.row_lengths()), pieces.row_lengths())
        new_splits = tf.concat([[0], tf.cumsum(new_lengths)], axis=0)
        token_word = row_ids.repeated_range(new_lengths)
        token_source = tf.gather(pieces.row_splits, token_word) + (
            tf.range(new_splits[-1]) - tf.gather(new_splits, token_word)
        )
        token_whole_word = tf.gather(one_token, token_word)
        token_word_start = tf.gather(words.starts, token_word)
        token_word_end = tf.gather(words.ends, token_word)
        token_rows = tf.gather(words.rows, token_word)
        token_ids = tf.where(tf.gather(too_long, token_word), self.unknown_id, tf.gather(pieces.values, token_source))
        token_special = tf.gather(words.special, token_word)

        ids = row_ids.from_sorted_row_ids(tf.where(token_special >= 0, token_special, token_ids), token_rows, num_texts)
        ragged = ids.with_values  # every field has the ids' rows

        return TokenizedText(
            token_ids=ids,
            starts=ragged(tf.where(token_whole_word, token_word_start, tf.gather(piece_starts, token_source))),
            ends=ragged(tf.where(token_whole_word, token_word_end, tf.gather(piece_ends, token_source))),
            word_starts=ragged(token_word_start),
            word_ends=ragged(token_word_end),
        )


def invalid_utf8(texts: tf.Tensor) -> tf.Tensor:
    """[N] bool: True where a string is not valid UTF-8 (re-encoding it would change its bytes)."""
    return tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace") != texts
