"""tf_qa.graph.row_ids gives what TensorFlow's own ragged helpers give, with fewer ops."""

import pytest
import tensorflow as tf

from tf_qa.graph import row_ids

LENGTHS = [[], [0], [0, 0], [3], [2, 0, 1, 3], [0, 4, 0], [1] * 9]


@pytest.mark.parametrize("dtype", [tf.int32, tf.int64])
@pytest.mark.parametrize("lengths", LENGTHS)
def test_repeated_range_is_tf_repeat_of_a_range(lengths, dtype):
    lengths = tf.constant(lengths, dtype)
    want = tf.repeat(tf.range(tf.size(lengths, out_type=dtype)), lengths)
    got = row_ids.repeated_range(lengths)
    assert got.dtype == dtype
    assert got.numpy().tolist() == want.numpy().tolist()


@pytest.mark.parametrize("lengths", LENGTHS)
def test_value_row_ids_and_rows_from_them_are_the_ragged_tensors_own(lengths):
    ragged = tf.RaggedTensor.from_row_lengths(tf.range(sum(lengths)), tf.constant(lengths, tf.int64))
    ids = row_ids.value_row_ids(ragged)
    assert ids.numpy().tolist() == ragged.value_rowids().numpy().tolist()
    rebuilt = row_ids.from_sorted_row_ids(ragged.values, ids, ragged.nrows())
    assert rebuilt.row_splits.dtype == tf.int64
    assert rebuilt.to_list() == ragged.to_list()


def test_from_sorted_row_ids_keeps_empty_rows_at_the_end():
    rebuilt = row_ids.from_sorted_row_ids(tf.constant([5, 6]), tf.constant([1, 1]), 4)
    assert rebuilt.to_list() == [[], [5, 6], [], []]


def test_fewer_ops_than_tensorflows_own():
    """What the module is for: a graph of a few ops where tf.repeat and the checked ragged constructor build
    dozens."""

    def ops(fn, *specs):
        return len(tf.function(fn).get_concrete_function(*specs).graph.get_operations())

    spec = tf.TensorSpec([None], tf.int64)
    assert ops(row_ids.repeated_range, spec) * 2 < ops(lambda n: tf.repeat(tf.range(tf.size(n, tf.int64)), n), spec)
    scalar = tf.TensorSpec([], tf.int64)
    ours = ops(lambda v, r, n: row_ids.from_sorted_row_ids(v, r, n).row_splits, spec, spec, scalar)
    theirs = ops(lambda v, r, n: tf.RaggedTensor.from_value_rowids(v, r, n).row_splits, spec, spec, scalar)
    assert ours * 3 < theirs
