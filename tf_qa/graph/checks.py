"""In-graph request checks that run before the work they bound.

Each check reads only what costs nothing to read (shapes, string byte lengths, token counts), and the work
it bounds takes its inputs through ``gate``: that work cannot start before the check has passed, so a request
over a limit fails with INVALID_ARGUMENT before anything that grows with it is allocated. (An ``Assert``
alone is not enough: TensorFlow runs independent ops in parallel, so the work would start beside it.)

Example:

>>> from tf_qa.graph.limits import RequestLimits
>>> question = tf.constant(["a?", "b?", "c?"])
>>> gate([question], [check_at_most(RequestLimits(max_examples=2), "max_examples", tf.size(question),
...                                 "examples")])          # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
InvalidArgumentError: request has 3 examples, over the limit max_examples=2 ...
"""

from __future__ import annotations

import tensorflow as tf

from tf_qa.graph.limits import RequestLimits


def check(condition: tf.Tensor, message: str, *data) -> tf.Operation:
    """An assertion whose InvalidArgument error names the problem (and the offending values or batch rows)."""
    return tf.debugging.Assert(condition, [message, *data], summarize=20)


def check_at_most(limits: RequestLimits, name: str, value: tf.Tensor, unit: str) -> tf.Operation:
    """An assertion that the scalar ``value`` is at most the limit ``name``, naming both and the export option."""
    message = tf.strings.format("request has {} " + limits.over(name, unit), [value])
    return check(tf.cast(value, tf.int64) <= getattr(limits, name), message)


def bad_rows(bad: tf.Tensor) -> tf.Tensor:
    """[N] bool -> [n] int64 indices where it is True."""
    return tf.reshape(tf.where(bad), [-1])


def gate(tensors: list, checks: list) -> list:
    """``tensors`` passed through only once every check has passed: work that takes them waits for the checks."""
    with tf.control_dependencies(checks):
        return [tf.identity(t) for t in tensors]
