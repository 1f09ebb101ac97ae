"""The bench's batch-1 breakdown (benchmarks/breakdown.py) puts every traced node in its stage: the name scopes of
tf-qa's graph, and ONNX Runtime's node names and fused op types grouped the same way."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from breakdown import GRAPH_STAGES, graph_stage, onnx_stage


@pytest.mark.parametrize(
    "node,stage",
    [
        ("tokenization/word_piece_tokenizer/FastWordpieceTokenizeWithOffsets", "tokenization"),
        ("windows/Repeat/boolean_mask", "windows"),
        ("model/embeddings/ResourceGather", "embeddings"),
        ("model/attention_3/MatMul", "attention"),  # TF numbers repeated scopes
        ("model/ffn_5/FusedBatchNormV3", "ffn"),
        ("model/qa_head/MatMul", "qa_head"),
        ("model/TensorListConcatV2_1", "model, other"),
        ("merging/UnicodeEncode/UnicodeEncode", "merging"),
        ("StatefulPartitionedCall", None),  # the call around the graph, not a stage
        ("tf_distil_bert_for_question_answering_1/distilbert/transformer/layer_._5/ffn/lin2/kernel", None),
    ],
)
def test_graph_nodes_fall_in_their_stage(node, stage):
    assert graph_stage(node) == stage
    assert stage is None or stage in (*GRAPH_STAGES, "model, other")


@pytest.mark.parametrize(
    "node,op_type,part",
    [
        ("EmbedLayerNormalization_0_quant", "QEmbedLayerNormalization", "embeddings"),
        ("Attention_2_quant", "QAttention", "attention"),
        ("SkipLayerNorm_AddBias_4", "SkipLayerNormalization", "attention"),  # even: after an attention block
        ("SkipLayerNorm_AddBias_3", "SkipLayerNormalization", "ffn"),  # odd: after an FFN
        ("/distilbert/transformer/layer.1/sa_layer_norm/LayerNormalization_output_0_QuantizeLinear", "", "attention"),
        ("/distilbert/transformer/layer.0/ffn/lin1/MatMul_quant", "MatMulInteger", "ffn"),
        ("Gelu_AddBias_1", "BiasGelu", "ffn"),
        ("/qa_outputs/MatMul_quant", "MatMulInteger", "qa_head"),
        ("", "DynamicQuantizeLinear", "model, other"),
    ],
)
def test_onnx_runtime_nodes_fall_in_the_same_parts(node, op_type, part):
    assert onnx_stage(node, op_type) == part
