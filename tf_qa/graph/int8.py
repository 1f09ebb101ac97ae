"""Static int8 products for the reduced-precision blocks: oneDNN's fused int8 inner product over calibrated ranges.

In an int8 export (``matmul_dtype="int8"``, see ``tf_qa.graph.distilbert``) each dense product of a transformer
block takes its bf16 rows through ``QuantizeV2`` (uint8 over the product's input range calibrated at export) into
``_QuantizedMatMul``: oneDNN's u8s8 inner product (VNNI, AMX-INT8) with the bias, for lin1 the exact GELU, and the
dequantization to bf16 fused into it. Weights are int8 with one scale per output column. The ranges are graph
constants, so a row's rounding never depends on the other rows of its batch.

BERT's activations have outlier channels: one or two input channels of a product reach several times the others'
magnitude (up to 30 where the rest stay under 7). One uint8 range over all of them would leave the others a few
steps. So calibration (``RangeRecorder``) names a product's outlier channels, those past ``OUTLIER_FACTOR`` times
the 99th percentile of its channels' largest magnitudes, and its range covers the other channels only; each
outlier channel is divided into that range before the quantization and its row of the kernel multiplied by the
same divisor, so that the product is the same.

``_QuantizedMatMul`` belongs to TensorFlow's oneDNN kernels, which every x86-64 Linux and Windows build of
TensorFlow has, tensorflow_model_server's included; it is not in ``tf.raw_ops`` (``tf-qa validate`` names it).

Example:

>>> kernel = np.array([[0.5, -1.0], [0.25, 2.0]], np.float32)
>>> int8_kernel, scale = int8_columns(kernel)
>>> int8_kernel.tolist(), scale.tolist()
([[127, -64], [64, 127]], [0.5, 2.0])
>>> product = Int8Product(kernel, np.zeros(2, np.float32), (-4.0, 4.0))
>>> out = product(uint8_rows(tf.constant([[1.0, 2.0]], tf.bfloat16), product.input_range, product.input_scale))
>>> out.dtype, np.round(out.numpy().astype(np.float32), 1).tolist()
(tf.bfloat16, [[1.0, 3.0]])
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

#: The op, from TensorFlow's oneDNN kernels (x86-64 builds): not in ``tf.raw_ops``.
QUANTIZED_MATMUL_OP = "_QuantizedMatMul"
#: An input channel is an outlier when its largest magnitude passes this many times the 99th percentile of its
#: product's channels' largest magnitudes (never all of them: the 99th percentile is below the largest).
OUTLIER_FACTOR = 2.0


def int8_columns(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A float [in, out] kernel as int8 with one float32 scale per output column (127 standing for the scale)."""
    kernel = np.asarray(kernel, np.float32)
    scale = np.maximum(np.abs(kernel).max(axis=0), 1e-12)
    return np.round(kernel / scale * 127.0).astype(np.int8), scale


def uint8_rows(rows: tf.Tensor, input_range: tuple[float, float], input_scale: np.ndarray | None = None) -> tf.Tensor:
    """[N, in] rows (times ``input_scale``, [in], if given) as uint8 over ``input_range``: each value's nearest step,
    ``round((x - low) * 255 / (high - low))``, which ``_QuantizedMatMul`` takes as ``MIN_FIRST`` input (values
    outside the range saturate)."""
    low, high = input_range
    rows = tf.cast(rows, tf.float32)
    if input_scale is not None:
        rows *= tf.constant(input_scale)
    # MIN_COMBINED makes quint8 the same steps as MIN_FIRST (ties aside), on TensorFlow's own kernel: a few
    # microseconds a call where oneDNN's MIN_FIRST builds a primitive on every call (benchmarks/README.md).
    return tf.raw_ops.QuantizeV2(input=rows, min_range=low, max_range=high, T=tf.quint8, mode="MIN_COMBINED")[0]


class Int8Product:
    """One dense product in static int8: uint8 [N, in] rows (``uint8_rows`` over ``input_range`` of the rows times
    ``input_scale``) to bf16 [N, out].

    Args:
        kernel, bias: the float [in, out] kernel and [out] bias.
        input_range: (low, high) of the rows, calibrated (of the channels other than the outlier ones).
        gelu: the exact GELU fused in after the bias.
        channel_divisors: {input channel: divisor}: the outlier channels, divided into ``input_range`` before the
            quantization (``input_scale``), their kernel rows multiplied by the same.
    """

    def __init__(
        self,
        kernel: np.ndarray,
        bias: np.ndarray,
        input_range: tuple[float, float],
        *,
        gelu=False,
        channel_divisors=None,
    ):
        low, high = input_range
        self.input_range = (min(float(low), 0.0), max(float(high), 0.0))  # as the quantization takes it
        self.gelu = gelu
        self.units = kernel.shape[1]
        kernel = np.array(kernel, np.float32)
        self.input_scale = None  # [in] float32 factors of the rows before the quantization, or None: all 1
        if channel_divisors:
            self.input_scale = np.ones(kernel.shape[0], np.float32)
            for channel, divisor in channel_divisors.items():
                self.input_scale[channel] = 1.0 / divisor
                kernel[channel] *= divisor
        self._kernel, self._scale = int8_columns(kernel)
        self._bias = np.asarray(bias, np.float32)
        # Eager calls need a graph to create the op in. A traced graph gets the op itself: TF Serving's session
        # runs a function call through a PartitionedCall of its own, slower for a lone question (benchmarks/).
        self._eager_product = tf.function(self._quantized_matmul, autograph=False, reduce_retracing=True)

    def __call__(self, rows: tf.Tensor) -> tf.Tensor:
        product = self._eager_product if tf.executing_eagerly() else self._quantized_matmul
        return tf.ensure_shape(product(rows), [None, self.units])

    def _quantized_matmul(self, rows: tf.Tensor) -> tf.Tensor:
        low, high = self.input_range
        inputs = [rows, tf.constant(self._kernel, tf.qint8), tf.constant(self._bias)]
        inputs += [tf.constant(low), tf.constant(high), tf.constant(-self._scale), tf.constant(self._scale)]
        fused = ["BiasAdd", "GeluExact", "Dequantize"] if self.gelu else ["BiasAdd", "Dequantize"]
        graph = tf.compat.v1.get_default_graph()
        op = graph.create_op(QUANTIZED_MATMUL_OP, inputs, [tf.bfloat16], name="QuantizedMatMul", attrs=_attrs(fused))
        return op.outputs[0]


def _attrs(fused_ops: list[str]) -> dict:
    """``_QuantizedMatMul``'s attributes: uint8 rows, int8 constant weights, float bias, bf16 out."""
    attr = tf.compat.v1.AttrValue
    types = lambda *dtypes: attr(list=attr.ListValue(type=[d.as_datatype_enum for d in dtypes]))  # noqa: E731
    return {
        "T1": attr(type=tf.quint8.as_datatype_enum), "T2": attr(type=tf.qint8.as_datatype_enum),
        "Tbias": attr(type=tf.float32.as_datatype_enum), "U": attr(type=tf.float32.as_datatype_enum),
        "Tout": attr(type=tf.bfloat16.as_datatype_enum),
        "Tdevice_inputs": types(tf.quint8, tf.qint8, tf.float32), "Thost_inputs": types(*[tf.float32] * 4),
        "Tdevice_outputs": types(tf.bfloat16), "Thost_outputs": types(),
        "transpose_a": attr(b=False), "transpose_b": attr(b=False),
        "is_weight_const": attr(b=True), "is_bias_const": attr(b=True),
        "fused_ops": attr(list=attr.ListValue(s=[op.encode() for op in fused_ops])),
        "input_quant_mode": attr(s=b"MIN_FIRST"), "output_quant_mode": attr(s=b"MIN_FIRST"),
        "leakyrelu_alpha": attr(f=0.2),
    }  # fmt: skip


class Uint8Inputs:
    """``uint8_rows`` once per input and range: the products that share an input (each branch's query-key-value,
    each branch's lin1) share its quantization. Rows made by ``joined`` are quantized half by half. One per trace
    of the blocks."""

    def __init__(self):
        self._made: dict = {}
        self._halves: dict = {}  # rows made by ``joined``: their row blocks

    def __call__(self, rows: tf.Tensor, product: Int8Product) -> tf.Tensor:
        scale = product.input_scale
        key = (rows.ref(), product.input_range, None if scale is None else scale.tobytes())
        if key not in self._made:
            halves = self._halves.get(rows.ref(), [rows])
            quantized = [uint8_rows(half, product.input_range, scale) for half in halves]
            self._made[key] = quantized[0] if len(quantized) == 1 else tf.concat(quantized, axis=0)
        return self._made[key]

    def joined(self, halves: list[tf.Tensor]) -> tf.Tensor:
        """``halves`` (row blocks) joined into one [N, in] rows tensor, whose quantization for any product is then
        made of the halves' own, where each half is made: the same uint8 rows."""
        rows = tf.concat(halves, axis=0)
        self._halves[rows.ref()] = halves
        return rows


class RangeRecorder:
    """Each product's input channels' minimum and maximum by name, over the rows it is given (eager calls); from
    them the calibration: each product's range and outlier channels."""

    def __init__(self):
        self._lows: dict[str, np.ndarray] = {}
        self._highs: dict[str, np.ndarray] = {}

    def record(self, name: str, rows: tf.Tensor) -> None:
        values = rows.numpy().astype(np.float32)
        low, high = values.min(axis=0), values.max(axis=0)
        self._lows[name] = np.minimum(self._lows.get(name, low), low)
        self._highs[name] = np.maximum(self._highs.get(name, high), high)

    def calibration(self) -> tuple[dict[str, tuple[float, float]], dict[str, dict[int, float]]]:
        """(ranges, {outlier channel: divisor}) by product name: each range over the channels that are not
        outliers, each divisor what brings its channel's minimum and maximum into that range."""
        ranges, divisors = {}, {}
        for name, lows in self._lows.items():
            highs = self._highs[name]
            largest = np.maximum(np.abs(lows), np.abs(highs))
            outlier = largest > OUTLIER_FACTOR * np.quantile(largest, 0.99)
            low, high = float(lows[~outlier].min()), float(highs[~outlier].max())
            ranges[name] = (low, high)
            if outlier.any():
                divisors[name] = {int(c): _divisor(lows[c], highs[c], low, high) for c in np.flatnonzero(outlier)}
        return ranges, divisors


def _divisor(channel_low: float, channel_high: float, low: float, high: float) -> float:
    """What a channel of minimum ``channel_low`` and maximum ``channel_high`` is divided by to fit [low, high]."""
    above = channel_high / high if high > 0 else 1.0
    below = channel_low / low if low < 0 else 1.0
    return float(max(above, below, 1.0))
