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

    Every position is compared with every token at once (a [C, tokens, longest token] comparison): a constant
    number of ops whatever the tokens, where a loop over tokens and characters made some 250 small ops, each a
    fixed cost to the executor of a lone request.

    Args:
        code_points: [C] int32, the code points of a batch of texts, flat.
        rows: [C] int64, the text each code point belongs to.
        tokens: token text -> id; no token's first character occurs past the first in any token, so matches
            never overlap (``special_tokens_of`` checks it). Where two tokens match at one position (one a prefix
            of the other), the later one in ``tokens`` is taken.

    Returns:
        ids: [C] int32, the token's id where one starts, -1 elsewhere.
        covered: [C] bool, True on every character of a match.
    """
    size = tf.size(code_points)
    if not tokens:
        return tf.fill([size], -1), tf.zeros([size], tf.bool)
    width = max(map(len, tokens))
    # [tokens, width]: each token's code points; past its end any character matches.
    table = np.full([len(tokens), width], -1, np.int32)
    for index, token in enumerate(tokens):
        table[index, : len(token)] = [ord(char) for char in token]
    lengths = np.array([len(token) for token in tokens], np.int32)

    # [C, width]: the characters from each position on, -1 past the end of its text (no token char is -1).
    following = tf.range(size)[:, tf.newaxis] + tf.range(width)
    inside = following < size
    following = tf.minimum(following, size - 1)
    same_text = tf.gather(rows, following) == rows[:, tf.newaxis]
    window = tf.where(inside & same_text, tf.gather(code_points, following), -1)
    # [C, tokens]: token k starts at the position.
    matches = tf.reduce_all((window[:, tf.newaxis, :] == table) | (table < 0), axis=-1)
    # The last matching token (1-based, 0 for none), by a max over the tokens' ranks.
    rank = tf.reduce_max(tf.where(matches, tf.range(1, len(tokens) + 1), 0), axis=-1)
    ids = tf.gather(np.array([-1, *tokens.values()], np.int32), rank)
    # Matches never overlap: a character is covered when more matches started at or before it than ended.
    match_length = tf.gather(np.concatenate([[0], lengths]).astype(np.int32), rank)
    ends = tf.math.unsorted_segment_sum(tf.sign(match_length), tf.range(size) + match_length, size + width + 1)
    covered = tf.cumsum(tf.sign(match_length)) - tf.cumsum(ends[:size]) > 0
    return ids, covered
