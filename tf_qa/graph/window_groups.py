"""Windows run through the model in groups of similar length, to cut the work spent on padding.

Windows are sorted by length and cut into groups of at most ``group_size``; a group also ends before a window
more than ``WINDOW_GROUP_MAX_GROWTH`` times longer than its first. Each group is padded only to its own longest
window (on SQuAD at batch 16 this cuts the padded FLOPs from +21% to +2%; a question of a full and a short window
no longer pads the short one to 384). The groups run in a ``tf.while_loop``, which TF Serving's session overlaps.
``padded_logits`` pads a group further, to a multiple of a few tokens, so that the model runs on a few lengths.

Example:

>>> starts_group(tf.constant([10, 12, 20, 21, 22, 23]), group_size=4).numpy().tolist()
[True, False, True, False, False, False]
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from tf_qa.defaults import WINDOW_GROUP_MAX_GROWTH

#: logits(input_ids [w, l], attention_mask [w, l]) -> (start_logits, end_logits), each [w, l].
LogitsFunction = Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


def grouped_logits(
    logits: LogitsFunction, input_ids: tf.Tensor, attention_mask: tf.Tensor, group_size: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """``logits`` of W windows [W, L], run group by group; positions past a window's length are padding."""
    lengths = tf.reduce_sum(attention_mask, axis=1)
    order = tf.argsort(lengths, stable=True)
    input_ids, attention_mask, lengths = (tf.gather(t, order) for t in (input_ids, attention_mask, lengths))
    total, width = tf.shape(input_ids)[0], tf.shape(input_ids)[1]
    group_starts = tf.cast(tf.reshape(tf.where(starts_group(lengths, group_size)), [-1]), tf.int32)
    group_ends = tf.concat([group_starts[1:], [total]], axis=0)
    num_groups = tf.size(group_starts)

    def run_group(index, starts, ends):
        begin, end = group_starts[index], group_ends[index]
        length = lengths[end - 1]  # sorted: the group's longest
        start_logits, end_logits = logits(input_ids[begin:end, :length], attention_mask[begin:end, :length])
        padding = [[0, 0], [0, width - length]]
        return (
            index + 1,
            starts.write(index, tf.pad(tf.cast(start_logits, tf.float32), padding)),
            ends.write(index, tf.pad(tf.cast(end_logits, tf.float32), padding)),
        )

    def new_array():
        # One empty [0, width] entry past the groups, so that concat has a shape even with no groups.
        array = tf.TensorArray(tf.float32, size=num_groups + 1, infer_shape=False, element_shape=[None, None])
        return array.write(num_groups, tf.zeros([0, width]))

    _, starts, ends = tf.while_loop(
        lambda index, *_: index < num_groups, run_group, [tf.constant(0), new_array(), new_array()]
    )
    restore = tf.argsort(order)
    return tf.gather(starts.concat(), restore), tf.gather(ends.concat(), restore)


def padded_logits(
    logits: LogitsFunction, input_ids: tf.Tensor, attention_mask: tf.Tensor, multiple: int, max_length: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """``logits`` of windows [w, l] run padded (id 0, mask 0) to a multiple of ``multiple`` tokens, at most
    ``max_length`` (or l), and cut back to [w, l].

    oneDNN makes its kernels for each shape and TensorFlow keeps them per thread, at most 1024: a model that sees
    every length from 1 to 384 makes kernels on most calls, one that sees multiples of 32 only a few times.
    """
    if multiple == 1:
        return logits(input_ids, attention_mask)
    length = tf.shape(input_ids)[1]
    padded = tf.maximum(tf.minimum((length + multiple - 1) // multiple * multiple, max_length), length)
    extra = [[0, 0], [0, padded - length]]
    start_logits, end_logits = logits(tf.pad(input_ids, extra), tf.pad(attention_mask, extra))
    return start_logits[:, :length], end_logits[:, :length]


def starts_group(sorted_lengths: tf.Tensor, group_size: int) -> tf.Tensor:
    """[W] bool: which of the windows (sorted by length) begins a new group."""

    def step(state, length):
        first, count, _ = state
        starts = (count >= group_size) | (
            tf.cast(length, tf.float32) > WINDOW_GROUP_MAX_GROWTH * tf.cast(first, tf.float32)
        )
        return tf.where(starts, length, first), tf.where(starts, 1, count + 1), starts

    # The first window always starts a group: the initial count is already full.
    initial = (tf.zeros([], sorted_lengths.dtype), tf.constant(group_size), tf.constant(False))
    return tf.scan(step, sorted_lengths, initializer=initial)[2]
