"""The fusable DistilBERT forward pass gives the transformers model's own logits."""

import numpy as np
import pytest
import tensorflow as tf
from transformers import TFDistilBertForQuestionAnswering

from tf_qa.distilbert import DistilBertSpanLogits, is_supported


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
