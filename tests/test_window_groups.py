"""Windows run in groups of similar length give the same logits as each window run alone."""

import numpy as np
import tensorflow as tf

from tf_qa.graph.window_groups import starts_group


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
