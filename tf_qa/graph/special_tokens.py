"""Special tokens written in the text itself, found as a transformers fast tokenizer finds them.

A fast tokenizer splits its added tokens (``[CLS]``, ``[SEP]``, ``[UNK]``, ``[PAD]``, ``[MASK]`` for BERT) out of
the raw text before it normalizes anything: ``"a [SEP] b"`` is three tokens, the middle one id 102, a word of its
own; ``"a [sep] b"`` is five (the match is exact, as the tokens are not normalized). The pipeline feeds them to
the model like that, so the graph does too.

Example:

>>> import tensorflow as tf
>>> text = tf.strings.unicode_decode(["x[SEP]y [sep]"], "UTF-8")
>>> ids, covered = find_special_tokens(text.values, text.value_rowids(), {"[SEP]": 102})
>>> ids.numpy().tolist()
[-1, 102, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1]
>>> covered.numpy().astype(int).tolist()
[0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
"""

from __future__ import annotations

import tensorflow as tf


def special_tokens_of(tokenizer) -> dict[str, int]:
    """The added tokens of a transformers fast tokenizer that the graph finds in text, with their ids.

    Raises:
        ValueError: for added tokens matched otherwise than exactly (normalized, single-word, stripping), or
            tokens that could overlap in a text (one's first character inside another): not supported.
    """
    tokens = {}
    for token_id, added in sorted(tokenizer.added_tokens_decoder.items()):
        if added.normalized or added.single_word or added.lstrip or added.rstrip:
            raise ValueError(f"added token {added.content!r} is matched with options the graph does not implement")
        tokens[added.content] = token_id
    for token in tokens:
        for other in tokens:
            if token[0] in other[1:]:
                raise ValueError(f"added tokens {token!r} and {other!r} can overlap in a text; not supported")
    return tokens


def find_special_tokens(code_points: tf.Tensor, rows: tf.Tensor, tokens: dict[str, int]) -> tuple[tf.Tensor, tf.Tensor]:
    """Where the ``tokens`` occur in texts, exactly.

    Args:
        code_points: [C] int32, the code points of a batch of texts, flat.
        rows: [C] int64, the text each code point belongs to.
        tokens: token text -> id; no token's first character occurs past the first in any token, so matches
            never overlap (``special_tokens_of`` checks it).

    Returns:
        ids: [C] int32, the token's id where one starts, -1 elsewhere.
        covered: [C] bool, True on every character of a match.
    """
    size = tf.size(code_points)
    ids = tf.fill([size], -1)
    covered = tf.zeros([size], tf.bool)
    for token, token_id in tokens.items():
        length = len(token)
        padded_points = tf.concat([code_points, tf.fill([length], -1)], axis=0)
        padded_rows = tf.concat([rows, tf.fill([length], tf.constant(-1, rows.dtype))], axis=0)
        starts = tf.ones([size], tf.bool)
        for offset, char in enumerate(token):
            starts &= (padded_points[offset : offset + size] == ord(char)) & (
                padded_rows[offset : offset + size] == rows
            )
        ids = tf.where(starts, token_id, ids)
        for offset in range(length):
            covered |= tf.concat([tf.zeros([offset], tf.bool), starts], axis=0)[:size]
    return ids, covered
