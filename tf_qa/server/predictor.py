"""Predict requests as TF Serving handles them, shared by the gRPC service and the REST handler.

The predictor admits a bounded number of requests at once, resolves the version, checks the inputs against
the signature (names, dtypes, ranks, sizes), runs the session with the request's deadline as its run timeout,
and turns failures into ``tf_qa.errors.TFQAError`` with a gRPC status code.

Example:

>>> predictor = Predictor({"qa": repository})                                               # doctest: +SKIP
>>> with predictor.admit():                                                            # doctest: +SKIP
...     loaded = predictor.acquire("distilbert-squad", None)
...     names, values = predictor.predict(loaded, "serving_default", {"question": q, "context": c})
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

import numpy as np
import tensorflow as tf
from grpc import StatusCode
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2

from tf_qa import errors
from tf_qa.errors import graph_error_message
from tf_qa.server.admission import Admission, Overloaded, request_windows
from tf_qa.server.batching import DeadlineExpired, RequestBatcher
from tf_qa.server.metrics import ServerMetrics
from tf_qa.server.options import DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_WINDOWS_IN_FLIGHT
from tf_qa.server.repository import LoadedVersion, ModelRepository
from tf_qa.server.request_log import RequestLogger
from tf_qa.signatures import SERVING_DEFAULT
from tf_qa.tensors import fill_tensor_proto

log = logging.getLogger("tf_qa.server.requests")


def tensor_from_proto(name: str, tensor, max_elements: int) -> np.ndarray:
    """A request's TensorProto as an array; INVALID_ARGUMENT when malformed or too large.

    A TensorProto may state a shape and carry fewer values (the last one is repeated), so a few bytes can
    declare billions of elements: the count is checked before anything is allocated. Every element of a
    genuine request costs at least one of its bytes, so ``max_elements`` is the request size limit.
    """
    sizes = [dim.size for dim in tensor.tensor_shape.dim]
    if any(size < 0 for size in sizes):
        raise errors.error_for(StatusCode.INVALID_ARGUMENT, f"input {name!r} has a negative dimension: {sizes}")
    elements = int(np.prod(sizes, dtype=object))
    if elements > max_elements:
        raise errors.error_for(
            StatusCode.INVALID_ARGUMENT,
            f"input {name!r} declares {elements} elements (shape {sizes}), more than a request may "
            f"carry ({max_elements}, tf-qa serve --max-request-bytes)",
        )
    try:
        return tf.make_ndarray(tensor)
    except Exception as error:  # noqa: BLE001  any malformed TensorProto
        raise errors.error_for(StatusCode.INVALID_ARGUMENT, f"input {name!r} is not a valid tensor: {error}") from None


def predict_response(
    loaded: LoadedVersion, signature_name: str, outputs: list[str], values: list
) -> predict_pb2.PredictResponse:
    """The PredictResponse of a run: the version that answered and each output's tensor, written in place (the
    gRPC service's answer and the request log's record)."""
    response = predict_pb2.PredictResponse()
    response.model_spec.name = loaded.model_name
    response.model_spec.version.value = loaded.version
    response.model_spec.signature_name = signature_name or SERVING_DEFAULT
    for output, value in zip(outputs, values):
        fill_tensor_proto(response.outputs[output], value)
    return response


#: The ``model_name`` label of requests for a model the server does not serve.
UNSERVED_MODEL_LABEL = "(not served)"


class Predictor:
    """Validates and runs Predict requests as TF Serving does; shared by the gRPC and REST front ends.

    Args:
        repositories: each served model's loaded versions, by name (the model config file may name several;
            the server may change the dict as the file changes).
        batcher: merges concurrent requests when given.
        max_in_flight: Predict requests admitted at once (gRPC and REST together); one more is refused at once
            with RESOURCE_EXHAUSTED rather than queued.
        max_request_bytes: the largest request message or REST body.
        metrics: where requests, runs and answers are counted (a registry of its own when not given).
        max_windows_in_flight: windows of work admitted at once (``tf_qa.server.admission``); a request that
            would go past it is refused like one past ``max_in_flight``.
    """

    def __init__(
        self,
        repositories: dict[str, ModelRepository],
        batcher: RequestBatcher | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        metrics: ServerMetrics | None = None,
        max_windows_in_flight: int = DEFAULT_MAX_WINDOWS_IN_FLIGHT,
    ):
        self.repositories = repositories
        self.metrics = metrics or ServerMetrics()
        #: Each model's request logger, where its config asks for one (``tf_qa.server.request_log``).
        self.request_loggers: dict[str, RequestLogger] = {}
        self.admission = Admission(max_in_flight, max_windows_in_flight)
        self.batcher = batcher
        self.max_request_bytes = max_request_bytes

    @property
    def max_in_flight(self) -> int:
        """Predict requests admitted at once (the admission's count)."""
        return self.admission.max_requests

    @contextmanager
    def serving(self, model_name: str, entrypoint: str, traceparent: str | None = None):
        """One Predict request (``entrypoint``: GRPC or REST): counted and timed (``metrics``), and its outcome
        logged with the caller's W3C ``traceparent`` (a refusal at WARNING, one for load and an answer at DEBUG)."""
        started = time.perf_counter()
        trace = f" traceparent={traceparent}" if traceparent else ""
        # A name the server does not serve is counted under one label: a client must not grow the metrics.
        label = model_name if model_name in self.repositories else UNSERVED_MODEL_LABEL
        try:
            with self.metrics.request(label, "predict", entrypoint):
                yield
        except errors.TFQAError as error:
            took = (time.perf_counter() - started) * 1000
            # Refusals for load come by the thousand under overload: counted in the metrics, logged at DEBUG only.
            level = logging.DEBUG if isinstance(error, Overloaded) else logging.WARNING
            log.log(level, "Predict %s %s %s %.1fms%s: %s", model_name, entrypoint, error.code.name, took, trace, error)
            raise
        log.debug("Predict %s %s OK %.1fms%s", model_name, entrypoint, (time.perf_counter() - started) * 1000, trace)

    def admit(self):
        """Holds one of the ``max_in_flight`` places for a request (its work is admitted in ``predict``, once its
        inputs are known); ``Overloaded`` at once when none is free."""
        return self.admission.request()

    def run(self, key, feeds: dict, timeout: float | None = None) -> list:
        """Runs one request (or a merged batch) on a version's session; ``key`` = (version, signature, outputs).

        ``timeout`` (seconds) becomes the session's run timeout, as TF Serving's enforce_session_run_timeout:
        past it the run is cancelled and raises DeadlineExceededError.
        """
        if timeout is not None and timeout < 0.001:
            raise DeadlineExpired("the request's deadline passed before it could run")
        loaded, name, outputs = key
        signature = loaded.signatures[name]
        options = None if timeout is None else tf.compat.v1.RunOptions(timeout_in_ms=max(1, int(timeout * 1000)))
        started = time.perf_counter()
        values = loaded.session.run([signature.outputs[o].name for o in outputs], feeds, options=options)
        self.metrics.observe_run(loaded.model_name, time.perf_counter() - started, len(next(iter(feeds.values()))))
        return values

    def repository(self, model_name: str) -> ModelRepository:
        """The model's repository; NOT_FOUND when the server does not serve it."""
        repository = self.repositories.get(model_name)
        if repository is None:
            raise errors.error_for(StatusCode.NOT_FOUND, f"Servable not found for request: Latest({model_name})")
        return repository

    def acquire(self, model_name: str, version: int | None, label: str | None = None) -> LoadedVersion:
        """The version to answer with, by number or label (release it after); NOT_FOUND when there is none."""
        try:
            return self.repository(model_name).acquire(version, label)
        except LookupError as error:
            raise errors.error_for(StatusCode.NOT_FOUND, str(error)) from None

    def versions(self, model_name: str, version: int | None) -> list[int]:
        """The loaded versions of the model (only ``version`` when given); NOT_FOUND when none."""
        if model_name not in self.repositories:
            raise errors.error_for(StatusCode.NOT_FOUND, f"Could not find any versions of model {model_name}")
        versions = [v for v in self.repositories[model_name].statuses() if version is None or v == version]
        if not versions:
            raise errors.error_for(StatusCode.NOT_FOUND, f"Could not find version {version} of model {model_name}")
        return versions

    @staticmethod
    def signature_map(loaded: LoadedVersion) -> get_model_metadata_pb2.SignatureDefMap:
        """The version's signatures as GetModelMetadata reports them."""
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in loaded.signatures.items():
            signature_map.signature_def[key].CopyFrom(value)
        return signature_map

    def predict(
        self,
        loaded: LoadedVersion,
        signature_name: str,
        inputs: dict[str, np.ndarray],
        output_filter: list[str] | None = None,
        deadline: float | None = None,
        traceparent: str | None = None,
    ) -> tuple[list[str], list[np.ndarray]]:
        """Checks the inputs against the signature, runs it, returns (output names, values).

        ``deadline`` (``time.monotonic()`` seconds): past it the work stops and DEADLINE_EXCEEDED is raised.
        ``traceparent``: the caller's trace context, for the request log.
        """
        name = signature_name or SERVING_DEFAULT
        signature = loaded.signatures.get(name)
        if signature is None:
            raise errors.error_for(
                StatusCode.INVALID_ARGUMENT, f'Serving signature name: "{name}" not found in signature def'
            )
        feeds = self._feeds(name, signature, inputs)
        outputs = sorted(output_filter or signature.outputs)
        unknown = [o for o in outputs if o not in signature.outputs]
        if unknown:
            raise errors.error_for(StatusCode.INVALID_ARGUMENT, f"output_filter names unknown outputs {unknown}")
        key = (loaded, name, tuple(outputs))
        cost = request_windows(inputs, max_seq_len=loaded.max_seq_len, doc_stride=loaded.doc_stride)
        started = time.monotonic()
        try:
            with self.admission.work(cost):
                if self.batcher:
                    values = self.batcher.submit(key, feeds, deadline)
                else:
                    values = self.run(key, feeds, None if deadline is None else deadline - time.monotonic())
        except tf.errors.InvalidArgumentError as error:
            raise errors.error_for(StatusCode.INVALID_ARGUMENT, graph_error_message(error.message)) from None
        except DeadlineExpired:
            raise
        except tf.errors.DeadlineExceededError:
            raise errors.error_for(
                StatusCode.DEADLINE_EXCEEDED,
                f"the request's deadline passed; its work was stopped after {time.monotonic() - started:.2f}s",
            ) from None
        except ValueError as error:  # e.g. a feed of the wrong rank
            raise errors.error_for(StatusCode.INVALID_ARGUMENT, str(error)) from None
        except tf.errors.OpError as error:
            raise errors.error_for(StatusCode.INTERNAL, error.message) from None
        values = [np.asarray(v) for v in values]
        self.metrics.observe_answers(loaded.model_name, dict(zip(outputs, values)))
        self._log(loaded, name, inputs, outputs, values, traceparent)
        return outputs, values

    def _log(self, loaded: LoadedVersion, signature_name: str, inputs, outputs, values, traceparent) -> None:
        """Hands a sampled request and its response to the model's request logger; never fails the request."""
        logger = self.request_loggers.get(loaded.model_name)
        if logger is None or not logger.sampled():
            return
        try:
            request = predict_pb2.PredictRequest()
            for key, value in inputs.items():
                fill_tensor_proto(request.inputs[key], value)
            spec = request.model_spec
            spec.name, spec.signature_name, spec.version.value = loaded.model_name, signature_name, loaded.version
            response = predict_response(loaded, signature_name, outputs, values)
        except (ValueError, TypeError) as error:
            logger.dropped("encode_error", str(error))
            return
        logger.write(request, response, traceparent)

    @staticmethod
    def _feeds(name: str, signature, inputs: dict[str, np.ndarray]) -> dict:
        """The session feeds of ``inputs``; INVALID_ARGUMENT for missing, extra or mistyped inputs."""
        missing = sorted(set(signature.inputs) - set(inputs))
        extra = sorted(set(inputs) - set(signature.inputs))
        if missing or extra:
            raise errors.error_for(
                StatusCode.INVALID_ARGUMENT,
                f"input keys do not match signature {name!r}: missing {missing}, unexpected {extra}; "
                f"expected {sorted(signature.inputs)}",
            )
        feeds = {}
        for key, value in inputs.items():
            expected = tf.dtypes.as_dtype(signature.inputs[key].dtype)
            got = tf.string if value.dtype == object else tf.dtypes.as_dtype(value.dtype)
            if got != expected:
                raise errors.error_for(
                    StatusCode.INVALID_ARGUMENT,
                    f"input {key!r} has dtype {got.name}, signature {name!r} expects {expected.name}",
                )
            rank = len(signature.inputs[key].tensor_shape.dim)
            if not signature.inputs[key].tensor_shape.unknown_rank and value.ndim != rank:
                raise errors.error_for(
                    StatusCode.INVALID_ARGUMENT,
                    f"input {key!r} has shape {list(value.shape)}, signature {name!r} expects rank {rank}",
                )
            feeds[signature.inputs[key].name] = value
        return feeds
