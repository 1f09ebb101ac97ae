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

from tf_qa import signatures
from tf_qa.signatures import SERVING_DEFAULT, TOKEN_SPANS_SIGNATURE, TOP_K_SIGNATURE

_WARMUP_QUESTION = "What is the capital of France?"
_WARMUP_CONTEXT = "Paris is the capital and most populous city of France, on the Seine."


def warmup_requests(model_name: str) -> list:
    """PredictRequests for every signature at batch sizes 1 and 8, including a multi-window context."""
    long_context = " ".join([_WARMUP_CONTEXT] * 60)  # about 1,000 tokens: several windows
    requests = []
    for batch in (1, 8):
        questions = [_WARMUP_QUESTION] * batch
        contexts = [long_context if i == batch - 1 else _WARMUP_CONTEXT for i in range(batch)]
        inputs_by_signature = {
            SERVING_DEFAULT: signatures.serving_default_inputs(questions, contexts),
            TOP_K_SIGNATURE: signatures.answer_top_k_inputs(
                questions, contexts, top_k=3, handle_impossible_answer=True
            ),
            TOKEN_SPANS_SIGNATURE: signatures.token_spans_inputs(
                [[101, 2054, 102, 3000, 2003, 102]] * batch, [[1] * 6] * batch
            ),
        }
        requests += [make_request(model_name, signature, inputs) for signature, inputs in inputs_by_signature.items()]
    return requests


def make_request(model_name: str, signature: str, inputs: dict[str, np.ndarray]) -> predict_pb2.PredictRequest:
    """``tf_qa.signatures.predict_request`` as TF Serving's own message class, for its PredictionLog."""
    request = signatures.predict_request(signature, inputs, model_name)
    return predict_pb2.PredictRequest.FromString(request.SerializeToString())


def write_warmup(path: Path, requests: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def read_prediction_logs(path: str | Path) -> list:
    """The ``PredictionLog`` records of a TFRecord file: a warmup file, or a request log TF Serving (or
    ``tf-qa serve``) wrote; raises if a record is not a PredictionLog."""
    return [
        prediction_log_pb2.PredictionLog.FromString(record)
        for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator()
    ]


def read_warmup(path: Path) -> list:
    """The PredictRequests of a warmup file."""
    return [log.predict_log.request for log in read_prediction_logs(path)]
