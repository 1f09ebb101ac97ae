"""Windows run in groups of similar length give the same logits as each window run alone."""

import numpy as np
import pytest
import tensorflow as tf

from tf_qa.graph.window_groups import padded_logits, starts_group


def test_groups_close_at_the_size_and_before_a_much_longer_window(qa_model):
    # Group size 4; a window longer than 1.5x the group's first starts a new group.
    lengths = tf.constant([10, 11, 12, 13, 14, 30, 40, 45, 46, 100, 384])
    starts = starts_group(lengths, qa_model.options.window_group_size).numpy().tolist()
    assert starts == [True, False, False, False, True, True, False, False, True, True, True]


def test_grouped_logits_equal_each_window_alone(qa_model):
    rng = np.random.default_rng(0)
    lengths = [12, 60, 7, 33, 60, 9, 41, 10, 58]
    width = max(lengths)
    input_ids = rng.integers(1000, 5000, size=[len(lengths), width]).astype(np.int32)
    attention_mask = np.zeros_like(input_ids)
    for row, length in enumerate(lengths):
        attention_mask[row, :length] = 1
        input_ids[row, length:] = 0
    starts, ends = qa_model.grouped_logits(tf.constant(input_ids), tf.constant(attention_mask))
    for row, length in enumerate(lengths):
        alone_start, alone_end = qa_model.logits(
            input_ids[row : row + 1, :length], attention_mask[row : row + 1, :length]
        )
        np.testing.assert_allclose(starts[row, :length], alone_start[0], atol=1e-5)
        np.testing.assert_allclose(ends[row, :length], alone_end[0], atol=1e-5)


@pytest.mark.parametrize(
    "length, multiple, max_length, seen",
    [(1, 1, 384, 1), (1, 32, 384, 32), (32, 32, 384, 32), (33, 32, 384, 64), (370, 32, 384, 384), (90, 64, 100, 100)],
)
def test_windows_run_padded_to_the_multiple_and_cut_back(length, multiple, max_length, seen):
    shapes = []

    def logits(input_ids, attention_mask):
        shapes.append((input_ids.shape.as_list(), int(tf.reduce_sum(attention_mask)), int(tf.reduce_sum(input_ids))))
        positions = tf.cast(tf.range(tf.shape(input_ids)[1])[None, :], tf.float32)
        return positions + tf.zeros_like(input_ids, tf.float32), -positions + tf.zeros_like(input_ids, tf.float32)

    ids = tf.ones([2, length], tf.int32)
    starts, ends = padded_logits(logits, ids, tf.ones_like(ids), multiple, max_length)
    # The model sees the padded length; the padding is id 0 and mask 0, and the logits come back cut to `length`.
    assert shapes == [([2, seen], 2 * length, 2 * length)]
    assert starts.shape.as_list() == ends.shape.as_list() == [2, length]
    np.testing.assert_array_equal(starts[0], np.arange(length))


@pytest.mark.parametrize("multiple", [1, 32, 64])
def test_padded_windows_give_each_window_alones_logits(qa_model, multiple):
    rng = np.random.default_rng(1)
    ids = rng.integers(1000, 5000, size=[3, 45]).astype(np.int32)
    alone_start, alone_end = qa_model.logits(ids, np.ones_like(ids))
    starts, ends = padded_logits(qa_model.logits, tf.constant(ids), tf.ones_like(ids), multiple, 384)
    np.testing.assert_allclose(starts, alone_start, atol=1e-5)
    np.testing.assert_allclose(ends, alone_end, atol=1e-5)
