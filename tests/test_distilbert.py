"""The fusable DistilBERT forward pass gives the transformers model's own logits."""

import collections

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the TF Text ops the SavedModel uses
from transformers import TFDistilBertForQuestionAnswering

from tf_qa.graph import int8
from tf_qa.graph.distilbert import DistilBertSpanLogits, is_supported
from tf_qa.saved_model.platform_config import read_platform_config
from tf_qa.saved_model.session import load_session
from tf_qa.signatures import SERVING_DEFAULT


@pytest.fixture(scope="module")
def transformers_qa_model(checkpoint_dir):
    return TFDistilBertForQuestionAnswering.from_pretrained(checkpoint_dir)


def test_logits_match_transformers_with_padding(transformers_qa_model):
    span_logits = DistilBertSpanLogits(transformers_qa_model)
    rng = np.random.default_rng(0)
    input_ids = tf.constant(rng.integers(0, 30000, size=[3, 40]), tf.int32)
    lengths = [40, 25, 7]
    attention_mask = tf.constant([[1] * n + [0] * (40 - n) for n in lengths], tf.int32)
    expected = transformers_qa_model(input_ids=input_ids, attention_mask=attention_mask, training=False)
    start, end = span_logits(input_ids, attention_mask)
    for got, want in ((start, expected.start_logits), (end, expected.end_logits)):
        for row, n in enumerate(lengths):  # padding positions are masked downstream; compare real tokens
            np.testing.assert_allclose(got[row, :n].numpy(), want[row, :n].numpy(), atol=1e-5, rtol=1e-5)


def test_weights_are_shared_not_copied(transformers_qa_model):
    span_logits = DistilBertSpanLogits(transformers_qa_model)
    assert span_logits.trainable_weights == [] and span_logits.weights
    assert {id(v) for v in span_logits.weights} == {id(v) for v in transformers_qa_model.weights}


def test_only_distilbert_qa_models_are_accepted(transformers_qa_model):
    assert is_supported(transformers_qa_model)
    assert not is_supported(object())
    with pytest.raises(ValueError, match="is not a TFDistilBertForQuestionAnswering"):
        DistilBertSpanLogits(object())


@pytest.mark.parametrize("parallel_branches", [1, 2])
def test_bfloat16_matmuls_are_close_but_not_exact(transformers_qa_model, parallel_branches):
    rng = np.random.default_rng(1)
    input_ids = tf.constant(rng.integers(0, 30000, size=[2, 30]), tf.int32)
    attention_mask = tf.ones([2, 30], tf.int32)
    exact = DistilBertSpanLogits(transformers_qa_model)(input_ids, attention_mask)
    bf16_layer = DistilBertSpanLogits(
        transformers_qa_model, matmul_dtype="bfloat16", parallel_branches=parallel_branches
    )
    fast = bf16_layer(input_ids, attention_mask)
    products = [product for block in bf16_layer._branches for branch in block for product in branch[1:]]
    assert {tf.as_dtype(array.dtype) for product in products for array in product[1:]} == {tf.bfloat16}
    # Per block and branch: query, key and value as one product; the attention output; the FFN's two.
    assert [len(block) for block in bf16_layer._branches] == [parallel_branches] * len(
        transformers_qa_model.distilbert.transformer.layer
    )
    for got, want in zip(fast, exact):
        assert got.dtype == tf.float32
        difference = np.abs(got.numpy() - want.numpy())
        assert 0 < difference.max() < 0.1 * np.abs(want.numpy()).max()


def test_parallel_branches_split_each_blocks_products_into_parts_that_sum_to_them(transformers_qa_model):
    """The branches' weights are the block's, cut by head and by FFN column: put back together they are
    the unsplit block's, and only the first branch carries the output biases."""
    whole, *_ = DistilBertSpanLogits(transformers_qa_model, matmul_dtype="bfloat16")._branches[0]
    branches = DistilBertSpanLogits(transformers_qa_model, matmul_dtype="bfloat16", parallel_branches=2)
    first, second = branches._branches[0]
    config = transformers_qa_model.config
    head = config.dim // config.n_heads
    assert (first.heads, second.heads) == (config.n_heads - config.n_heads // 2, config.n_heads // 2)
    join = lambda axis, *arrays: np.concatenate(arrays, axis=axis)  # noqa: E731
    np.testing.assert_array_equal(join(0, first.out.kernel, second.out.kernel), whole.out.kernel)
    np.testing.assert_array_equal(join(1, first.lin1.kernel, second.lin1.kernel), whole.lin1.kernel)
    np.testing.assert_array_equal(join(0, first.lin2.kernel, second.lin2.kernel), whole.lin2.kernel)
    np.testing.assert_array_equal(first.lin2.bias, whole.lin2.bias)
    assert not second.out.bias.astype(np.float32).any() and not second.lin2.bias.astype(np.float32).any()
    # Query, key and value: each branch has its own heads' columns of the three, in that order.
    for part in range(3):
        columns = [b.qkv.kernel[:, part * b.heads * head : (part + 1) * b.heads * head] for b in (first, second)]
        np.testing.assert_array_equal(
            join(1, *columns), whole.qkv.kernel[:, part * config.dim : (part + 1) * config.dim]
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"parallel_branches": 2}, "parallel_branches above 1 needs matmul_dtype='bfloat16' or 'int8'"),
        ({"matmul_dtype": "bfloat16", "parallel_branches": 0}, "parallel_branches must be in"),
        ({"matmul_dtype": "bfloat16", "parallel_branches": 99}, "parallel_branches must be in"),
    ],
)
def test_parallel_branches_are_refused_where_they_cannot_be(transformers_qa_model, options, message):
    with pytest.raises(ValueError, match=message):
        DistilBertSpanLogits(transformers_qa_model, **options)


def _windows(seed: int, shape=(2, 30)) -> tuple[tf.Tensor, tf.Tensor]:
    rng = np.random.default_rng(seed)
    return tf.constant(rng.integers(0, 30000, size=shape), tf.int32), tf.ones(shape, tf.int32)


@pytest.mark.parametrize("parallel_branches", [1, 2])
def test_int8_products_over_calibrated_ranges_are_close_to_bfloat16(transformers_qa_model, parallel_branches):
    bf16_layer = DistilBertSpanLogits(
        transformers_qa_model, matmul_dtype="bfloat16", parallel_branches=parallel_branches
    )
    ranges, divisors = bf16_layer.int8_calibration([_windows(seed) for seed in range(3)])
    layers = len(transformers_qa_model.distilbert.transformer.layer)
    assert len(ranges) == layers * parallel_branches * 4  # query-key-value, output, lin1, lin2
    assert "layer_0/branch_0/qkv" in ranges and all(low < high for low, high in ranges.values())
    assert set(divisors) <= set(ranges) and all(d >= 1 for by in divisors.values() for d in by.values())
    int8_layer = DistilBertSpanLogits(
        transformers_qa_model,
        matmul_dtype="int8",
        parallel_branches=parallel_branches,
        int8_ranges=ranges,
        int8_channel_divisors=divisors,
    )
    input_ids, attention_mask = _windows(7)
    for got, want in zip(int8_layer(input_ids, attention_mask), bf16_layer(input_ids, attention_mask)):
        assert got.dtype == tf.float32
        difference = np.abs(got.numpy() - want.numpy())
        assert 0 < difference.max() < 0.1 * np.abs(want.numpy()).max()
    # Fixed ranges: a window gets the same logits alone as beside another one.
    alone = int8_layer(input_ids[:1], attention_mask[:1])
    beside = int8_layer(input_ids, attention_mask)
    for one, two in zip(alone, beside):
        np.testing.assert_allclose(one.numpy()[0], two.numpy()[0], atol=1e-2)


@pytest.mark.parametrize("rows", [7, 8])
def test_int8_normalizes_and_quantizes_the_rows_in_halves_with_the_outputs_of_whole_rows(transformers_qa_model, rows):
    bf16_layer = DistilBertSpanLogits(transformers_qa_model, matmul_dtype="bfloat16", parallel_branches=2)
    ranges, divisors = bf16_layer.int8_calibration([_windows(seed) for seed in range(2)])
    layer = DistilBertSpanLogits(
        transformers_qa_model,
        matmul_dtype="int8",
        parallel_branches=2,
        int8_ranges=ranges,
        int8_channel_divisors=divisors,
    )
    norm = transformers_qa_model.distilbert.transformer.layer[0].sa_layer_norm
    rng = np.random.default_rng(rows)
    values = tf.constant(rng.standard_normal((3, rows, layer.dim)), tf.bfloat16)
    parts, residual = [values[0], values[1]], values[2]
    layer._uint8_inputs = int8.Uint8Inputs()
    lin1 = layer._int8_products[layer._branches[0][0].lin1.name]
    got = layer._residual_norm(norm, parts, residual)
    want = layer._norm(norm, parts[0] + parts[1] + residual)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    quantized = layer._uint8_inputs(got, lin1)  # made from the halves
    whole = int8.uint8_rows(want, lin1.input_range, lin1.input_scale)
    np.testing.assert_array_equal(quantized.numpy(), whole.numpy())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"matmul_dtype": "int8"}, "matmul_dtype='int8' needs int8_ranges"),
        ({"matmul_dtype": "bfloat16", "int8_ranges": {}}, "only int8 takes them"),
        ({"matmul_dtype": "int8", "int8_ranges": {"layer_0/branch_0/qkv": (0.0, 1.0)}}, "no range for layer_0/"),
    ],
)
def test_int8_needs_a_range_for_every_product(transformers_qa_model, options, message):
    with pytest.raises(ValueError, match=message):
        DistilBertSpanLogits(transformers_qa_model, **options)


def test_unknown_matmul_dtype_is_refused(transformers_qa_model):
    with pytest.raises(ValueError, match="matmul_dtype must be one of"):
        DistilBertSpanLogits(transformers_qa_model, matmul_dtype="float16")


def test_served_session_runs_the_fused_onednn_kernels(saved_model_dir, transformers_qa_model):
    """As TF Serving runs it (TF1 session, group loop not inlined): one oneDNN kernel per dense layer and per
    layer norm. Guards the graph shapes the fusions depend on (``_layer_norm``'s ensure_shape, 2-D rows)."""
    session, signatures = load_session(saved_model_dir)
    signature = signatures[SERVING_DEFAULT]
    feeds = {
        signature.inputs["question"].name: [b"where is it?"],
        signature.inputs["context"].name: [b"It is in Paris, the capital of France."],
    }
    fetches = [output.name for output in signature.outputs.values()]
    session.run(fetches, feeds)
    metadata = tf.compat.v1.RunMetadata()
    session.run(
        fetches,
        feeds,
        options=tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE),
        run_metadata=metadata,
    )
    session.close()
    kernels = collections.Counter(
        node.timeline_label.split(" = ")[-1].split("(")[0]
        for device in metadata.step_stats.dev_stats
        for node in device.node_stats
    )
    if not any(kernel.startswith("_Mkl") for kernel in kernels):
        pytest.skip("oneDNN is off in this TensorFlow (TF_ENABLE_ONEDNN_OPTS=0 or a build without it)")
    n_layers = transformers_qa_model.config.n_layers
    assert kernels["_MklLayerNorm"] == 2 * n_layers + 1  # embeddings + two per block
    assert kernels["_MklNativeFusedMatMul"] == 6 * n_layers + 1  # q, k, v, out, lin1, lin2 per block + QA head
    assert not any("BatchNorm" in kernel or kernel in ("MatMul", "BiasAdd", "Mean") for kernel in kernels)


@pytest.mark.parametrize("parallel_branches", [1, 2])
def test_bfloat16_blocks_stay_bfloat16_between_fused_kernels(transformers_qa_model, parallel_branches):
    """The bf16 blocks as Grappler rewrites them in a session with the platform config's options: the scores'
    scale and mask inside their product (one ``_MklFusedBatchMatMulV2`` a block and branch) and no cast inside a
    block: the hidden states stay bf16 between them."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    layer = DistilBertSpanLogits(transformers_qa_model, matmul_dtype="bfloat16", parallel_branches=parallel_branches)
    spec = tf.TensorSpec([None, None], tf.int32)
    frozen = convert_variables_to_constants_v2(tf.function(layer).get_concrete_function(spec, spec))
    graph = tf.Graph()
    with graph.as_default():
        input_ids, attention_mask = tf.compat.v1.placeholder(tf.int32), tf.compat.v1.placeholder(tf.int32)
        outputs = tf.graph_util.import_graph_def(
            frozen.graph.as_graph_def(),
            input_map={frozen.inputs[0].name: input_ids, frozen.inputs[1].name: attention_mask},
            return_elements=[output.name for output in frozen.outputs],
        )
    metadata = tf.compat.v1.RunMetadata()
    with tf.compat.v1.Session(graph=graph, config=read_platform_config().session_config) as session:
        session.run(
            outputs,
            {input_ids: [[101, 2054, 102, 3000, 102, 0]], attention_mask: [[1, 1, 1, 1, 1, 0]]},
            options=tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE),
            run_metadata=metadata,
        )
    nodes = [
        (node.node_name, node.timeline_label.split(" = ")[-1].split("(")[0])
        for device in metadata.step_stats.dev_stats
        for node in device.node_stats
    ]
    kernels = collections.Counter(kernel for _, kernel in nodes)
    if not any(kernel.startswith("_Mkl") for kernel in kernels):
        pytest.skip("oneDNN is off in this TensorFlow (TF_ENABLE_ONEDNN_OPTS=0 or a build without it)")
    n_layers = transformers_qa_model.config.n_layers
    assert kernels["_MklFusedBatchMatMulV2"] == n_layers * parallel_branches
    in_blocks = [name for name, kernel in nodes if kernel == "Cast" and ("/attention" in name or "/ffn" in name)]
    assert in_blocks == []
