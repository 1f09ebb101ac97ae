"""Warmup requests: the PredictionLog records TF Serving replays from ``assets.extra`` before serving a version.

Every signature at batch sizes 1 and 8, one request with a multi-window context, so that the first real
request finds every shape's kernels ready (``--enable_model_warmup``).

Example:

>>> from tf_qa.saved_model.layout import warmup_file
>>> write_warmup(warmup_file("export/demo/1"), warmup_requests("demo"))   # doctest: +SKIP
>>> len(read_warmup(warmup_file("export/demo/1")))                       # doctest: +SKIP
6
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from tf_qa.defaults import DEFAULT_MAX_ANSWER_LEN, SERVING_DEFAULT, TOKEN_SPANS_SIGNATURE, TOP_K_SIGNATURE

_WARMUP_QUESTION = "What is the capital of France?"
_WARMUP_CONTEXT = "Paris is the capital and most populous city of France, on the Seine."


def warmup_requests(model_name: str) -> list:
    """PredictRequests for every signature at batch sizes 1 and 8, including a multi-window context."""
    long_context = " ".join([_WARMUP_CONTEXT] * 60)  # about 1,000 tokens: several windows
    requests = []
    for batch in (1, 8):
        questions = np.array([_WARMUP_QUESTION.encode()] * batch, dtype=object)
        contexts = np.array(
            [(long_context if i == batch - 1 else _WARMUP_CONTEXT).encode() for i in range(batch)], dtype=object
        )
        inputs_by_signature = {
            SERVING_DEFAULT: {"question": questions, "context": contexts},
            TOP_K_SIGNATURE: {
                "question": questions,
                "context": contexts,
                "top_k": np.full([batch], 3, np.int32),
                "max_answer_len": np.full([batch], DEFAULT_MAX_ANSWER_LEN, np.int32),
                "handle_impossible_answer": np.full([batch], True),
            },
            TOKEN_SPANS_SIGNATURE: {
                "input_ids": np.tile(np.array([[101, 2054, 102, 3000, 2003, 102]], np.int32), [batch, 1]),
                "attention_mask": np.ones([batch, 6], np.int32),
            },
        }
        requests += [make_request(model_name, signature, inputs) for signature, inputs in inputs_by_signature.items()]
    return requests


def make_request(model_name: str, signature: str, inputs: dict[str, np.ndarray]):
    """A PredictRequest for a signature, the inputs as TensorProtos."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def write_warmup(path: Path, requests: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def read_warmup(path: Path) -> list:
    """The PredictRequests of a warmup file (raises if a record is not a PredictionLog)."""
    requests = []
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        requests.append(log.predict_log.request)
    return requests
