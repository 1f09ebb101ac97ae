"""Row ids of flat values and ragged rows from them, each in a few ops.

TensorFlow's own (``tf.repeat``, ``RaggedTensor.value_rowids`` and ``RaggedTensor.from_value_rowids`` with its
checks) are built of 25 to 50 small ops each. A batch-1 question is a few milliseconds of work, and the executor
pays a cost per op, so the tokenizer and the windows use these instead: a sorted search (``UpperBound``,
``LowerBound``, core ops) over the rows' ends. The ragged tensors made here are not checked: their row ids come
from the graph's own arithmetic, sorted by construction.

Example:

>>> import tensorflow as tf
>>> repeated_range(tf.constant([2, 0, 1, 3])).numpy().tolist()
[0, 0, 2, 3, 3, 3]
>>> value_row_ids(tf.ragged.constant([[7, 8], [], [9]])).numpy().tolist()
[0, 0, 2]
>>> from_sorted_row_ids(tf.constant([5, 6, 7]), tf.constant([0, 2, 2]), 4).to_list()
[[5], [], [6, 7], []]
"""

from __future__ import annotations

import tensorflow as tf


def _upper_bound(ends: tf.Tensor, values: tf.Tensor) -> tf.Tensor:
    """For each of the 1-D ``values``, how many of the sorted 1-D ``ends`` are at most it."""
    found = tf.raw_ops.UpperBound(sorted_inputs=ends[tf.newaxis], values=values[tf.newaxis], out_type=ends.dtype)
    return found[0]


def repeated_range(lengths: tf.Tensor) -> tf.Tensor:
    """[sum(lengths)]: each index ``i`` of the 1-D ``lengths`` (int32 or int64, none negative) repeated
    ``lengths[i]`` times, in order; ``tf.repeat(tf.range(n), lengths)``."""
    ends = tf.cumsum(lengths)
    return _upper_bound(ends, tf.range(tf.reduce_sum(lengths)))


def value_row_ids(ragged: tf.RaggedTensor) -> tf.Tensor:
    """The row of each of a 2-D ragged tensor's values; ``ragged.value_rowids()``."""
    ends = ragged.row_splits[1:]
    return _upper_bound(ends, tf.range(tf.size(ragged.values, out_type=ends.dtype)))


def from_sorted_row_ids(values: tf.Tensor, row_ids: tf.Tensor, nrows: tf.Tensor) -> tf.RaggedTensor:
    """[nrows, (values)] ragged: each value in the row ``row_ids`` gives it (sorted, each below ``nrows``)."""
    row_ids = tf.convert_to_tensor(row_ids)
    bounds = tf.range(tf.cast(nrows, row_ids.dtype) + 1)
    splits = tf.raw_ops.LowerBound(sorted_inputs=row_ids[tf.newaxis], values=bounds[tf.newaxis], out_type=tf.int64)
    return tf.RaggedTensor.from_row_splits(values, splits[0], validate=False)
