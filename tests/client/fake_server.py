"""A PredictionService that fails as told before it answers "Paris": the clients' behaviour under failures and
refusals (retries, retry pushback, errors never retried), tested without a model. Needs only grpcio and tf_qa's
protos."""

from __future__ import annotations

from concurrent import futures

import grpc
import numpy as np

from tf_qa import protos
from tf_qa.errors import PUSHBACK_TRAILER
from tf_qa.tensors import make_tensor_proto


class FlakyPredictionService:
    """Fails the first ``failures`` calls with ``failure`` (with ``pushback_ms`` in the trailer when given), then
    fails every call with ``then`` or answers; ``calls`` counts them."""

    def __init__(
        self,
        failures: int,
        then: grpc.StatusCode | None = None,
        failure: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE,
        pushback_ms: int | None = None,
    ):
        self.calls, self.failures, self.then, self.failure, self.pushback_ms = 0, failures, then, failure, pushback_ms

    def predict(self, request, context):
        self.calls += 1
        if self.calls <= self.failures:
            if self.pushback_ms is not None:
                context.set_trailing_metadata(((PUSHBACK_TRAILER, str(self.pushback_ms)),))
            context.abort(self.failure, "not now")
        if self.then is not None:
            context.abort(self.then, "no")
        response = protos.PredictResponse()
        outputs = {
            "answer": np.array([[b"Paris"]], dtype=object),
            "score": np.array([[0.5]], np.float32),
            "start": np.array([[0]], np.int64),
            "end": np.array([[5]], np.int64),
        }
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(make_tensor_proto(value))
        return response


def fake_server(service: FlakyPredictionService, port: int = 0) -> tuple[grpc.Server, int]:
    """``service`` served on loopback (``port`` 0: a free one), started."""
    handler = grpc.method_handlers_generic_handler(
        "tensorflow.serving.PredictionService",
        {
            "Predict": grpc.unary_unary_rpc_method_handler(
                service.predict,
                request_deserializer=protos.PredictRequest.FromString,
                response_serializer=protos.PredictResponse.SerializeToString,
            ),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(2), handlers=[handler])
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, port
