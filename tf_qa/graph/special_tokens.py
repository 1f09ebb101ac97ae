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

import numpy as np
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

    Only the positions that hold a token's first character (``[`` for BERT's, rare in text) are compared with
    every token, all at once: a constant number of ops whatever the tokens, where a loop over the tokens and their
    characters made some 250 small ops, each a fixed cost to the executor of a lone request.

    Args:
        code_points: [C] int32, the code points of a batch of texts, flat.
        rows: [C] int64, the text each code point belongs to.
        tokens: token text -> id; no token's first character occurs past the first in any token, so matches
            never overlap (``special_tokens_of`` checks it) but where one is a prefix of another: there the longer
            is taken, as the tokenizers library's leftmost-longest matching does.

    Returns:
        ids: [C] int32, the token's id where one starts, -1 elsewhere.
        covered: [C] bool, True on every character of a match.
    """
    size = tf.size(code_points)
    if not tokens:
        return tf.fill([size], -1), tf.zeros([size], tf.bool)
    width = max(map(len, tokens))
    # [tokens, width]: each token's code points; past its end (-1) any character matches.
    table = np.full([len(tokens), width], -1, np.int32)
    for index, token in enumerate(tokens):
        table[index, : len(token)] = [ord(char) for char in token]
    first_chars = np.unique(table[:, 0])

    # [M]: the positions where a token could start; [M, width]: the characters from there, -1 past its text.
    starts = tf.where(tf.reduce_any(code_points[:, tf.newaxis] == first_chars, axis=1))[:, 0]
    starts = tf.cast(starts, tf.int32)
    following = starts[:, tf.newaxis] + tf.range(width)
    inside = following < size
    following = tf.minimum(following, size - 1)
    same_text = tf.gather(rows, following) == tf.gather(rows, starts)[:, tf.newaxis]
    window = tf.where(inside & same_text, tf.gather(code_points, following), -1)
    # [M]: the longest token that matches there, and its length (0 for none).
    matches = tf.reduce_all((window[:, tf.newaxis, :] == table) | (table < 0), axis=-1)
    match_lengths = tf.where(matches, np.array([len(token) for token in tokens], np.int32), 0)
    lengths = tf.reduce_max(match_lengths, axis=-1)
    longest = tf.gather(np.array(list(tokens.values()), np.int32), tf.argmax(match_lengths, axis=-1))
    ids = tf.tensor_scatter_nd_update(tf.fill([size], -1), starts[:, tf.newaxis], tf.where(lengths > 0, longest, -1))
    # Matches never overlap: a character is covered when more matches started at or before it than ended.
    opened = tf.math.unsorted_segment_sum(tf.sign(lengths), starts, size)
    closed = tf.math.unsorted_segment_sum(tf.sign(lengths), starts + lengths, size + width + 1)
    covered = tf.cumsum(opened) - tf.cumsum(closed[:size]) > 0
    return ids, covered
