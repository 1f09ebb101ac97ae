"""Static int8 products (``tf_qa.graph.int8``): int8 weights per column, calibrated ranges, outlier channels."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tf_qa.graph.int8 import Int8Product, RangeRecorder, int8_columns, uint8_rows


def _rows_with_an_outlier_channel(seed: int = 0) -> np.ndarray:
    """[64, 256] rows within about ±4, channel 5 reaching 40 (as BERT's outlier features do)."""
    rows = np.random.default_rng(seed).standard_normal((64, 256)).astype(np.float32)
    rows[:, 5] *= 12.0
    rows[0, 5] = 40.0
    return rows


def test_int8_columns_scale_each_column_by_its_largest_weight():
    kernel = np.array([[0.5, -4.0], [-0.25, 1.0], [0.1, 2.0]], np.float32)
    weights, scale = int8_columns(kernel)
    assert weights.dtype == np.int8 and scale.tolist() == [0.5, 4.0]
    assert weights[:, 0].tolist() == [127, -64, 25] and weights[:, 1].tolist() == [-127, 32, 64]
    np.testing.assert_allclose(weights * scale / 127, kernel, atol=scale.max() / 254)


def test_calibration_divides_outlier_channels_into_the_range_of_the_others():
    recorder = RangeRecorder()
    rows = _rows_with_an_outlier_channel()
    recorder.record("product", tf.constant(rows[:32]))
    recorder.record("product", tf.constant(rows[32:]))  # the ranges of all the calls
    ranges, divisors = recorder.calibration()
    others = np.delete(rows, 5, axis=1)
    low, high = ranges["product"]
    assert (low, high) == (float(others.min()), float(others.max()))
    assert list(divisors["product"]) == [5]
    divided = rows[:, 5] / divisors["product"][5]
    assert low <= divided.min() and divided.max() == pytest.approx(high)


def test_without_outliers_the_range_is_every_channels():
    recorder = RangeRecorder()
    rows = np.random.default_rng(3).uniform(-2, 3, (64, 256)).astype(np.float32)
    recorder.record("product", tf.constant(rows))
    assert recorder.calibration() == ({"product": (float(rows.min()), float(rows.max()))}, {})


@pytest.mark.parametrize("gelu", [False, True])
def test_dividing_the_outlier_channels_keeps_the_int8_product_close(gelu):
    rows = _rows_with_an_outlier_channel(1)
    kernel = np.random.default_rng(2).standard_normal((256, 16)).astype(np.float32) / 16
    bias = np.linspace(-1, 1, 16).astype(np.float32)
    exact = rows @ kernel + bias
    exact = tf.nn.gelu(exact, approximate=False).numpy() if gelu else exact
    recorder = RangeRecorder()
    recorder.record("product", tf.constant(rows))
    ranges, divisors = recorder.calibration()
    errors = {}
    for name, channel_divisors in (("divided", divisors["product"]), ("one range", None)):
        input_range = ranges["product"] if channel_divisors else (float(rows.min()), float(rows.max()))
        product = Int8Product(kernel, bias, input_range, gelu=gelu, channel_divisors=channel_divisors)
        out = product(uint8_rows(tf.constant(rows, tf.bfloat16), product.input_range, product.input_scale))
        assert out.dtype == tf.bfloat16
        errors[name] = float(np.sqrt(np.mean((out.numpy().astype(np.float32) - exact) ** 2)))
    assert errors["divided"] < 0.05 * np.abs(exact).mean()
    assert errors["divided"] < errors["one range"] / 2, errors


def test_a_traced_graph_holds_the_int8_op_itself_not_a_function_call():
    # A function call around each product costs TF Serving's session a PartitionedCall per product.
    product = Int8Product(np.eye(4, dtype=np.float32), np.zeros(4, np.float32), (-1.0, 1.0))
    traced = tf.function(lambda rows: product(uint8_rows(rows, product.input_range)))
    graph = traced.get_concrete_function(tf.TensorSpec([None, 4], tf.float32)).graph
    op_types = {op.type for op in graph.get_operations()}
    assert "_QuantizedMatMul" in op_types
    assert not op_types & {"PartitionedCall", "StatefulPartitionedCall"}, op_types
    eager = product(uint8_rows(tf.constant([[0.5, -0.5, 0.25, 0.0]]), product.input_range))
    np.testing.assert_allclose(eager.numpy().astype(np.float32), [[0.5, -0.5, 0.25, 0.0]], atol=0.01)


def test_rows_are_quantized_to_their_nearest_step_by_tensorflows_own_kernel():
    # oneDNN's MIN_FIRST QuantizeV2 builds a primitive on every call: slower on a lone question (benchmarks/README.md).
    low, high = -9.7, 12.3
    values = np.random.default_rng(4).normal(0.0, 4.0, (232, 384)).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        rows = tf.compat.v1.placeholder(tf.float32, [None, 384])
        quantized = uint8_rows(rows, (low, high))
    metadata = tf.compat.v1.RunMetadata()
    with tf.compat.v1.Session(graph=graph) as session:
        full_trace = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
        got = session.run(quantized, {rows: values}, options=full_trace, run_metadata=metadata)
    kernels = {
        node.node_name: node.timeline_label.split(" = ")[-1].split("(")[0]
        for device in metadata.step_stats.dev_stats
        for node in device.node_stats
    }
    assert kernels[quantized.op.name] == "QuantizeV2", kernels  # not oneDNN's _MklQuantizeV2
    steps = (values.astype(np.float64) - low) * 255 / (high - low)
    np.testing.assert_array_equal(got, np.clip(np.floor(steps + 0.5), 0, 255))  # the nearest, halves up
