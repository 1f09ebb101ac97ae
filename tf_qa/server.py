"""A small server that speaks TensorFlow Serving's gRPC API, for development, tests and machines without
``tensorflow_model_server``. **Production uses the stock tensorflow_model_server**; this server runs a
SavedModel the way it does (TF1 session, the signature's tensor names) so that the same client and the same
end-to-end tests work against both.

What it serves, for one model:

* ``PredictionService.Predict`` and ``GetModelMetadata`` (``signature_def``); ``Classify``, ``Regress`` and
  ``MultiInference`` answer UNIMPLEMENTED.
* ``ModelService.GetModelStatus``.
* gRPC health checking (``grpc.health.v1``) and server reflection;
* optionally TF Serving's REST API (``tf_qa.rest``).

It loads the newest numeric version folder under the base path (or the versions asked for), polls for new
ones and swaps to them without failing requests in flight, validates requests as TF Serving does (missing or
extra inputs, wrong dtype: INVALID_ARGUMENT) and stops cleanly on SIGTERM.

Example:

>>> server = ModelServer("export/demo", "demo", port=0)       # doctest: +SKIP
>>> server.start(); print(server.port)                        # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the TF Text ops of the graph, as tensorflow_model_server links them
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from tensorflow.core.protobuf import rewriter_config_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tf_qa.batching import RequestBatcher
from tf_qa.defaults import MAX_MESSAGE_BYTES, SERVING_DEFAULT

log = logging.getLogger("tf_qa.server")



def version_folders(base_path: str) -> list[int]:
    """Numeric version folders that hold a complete SavedModel, oldest first."""
    if not os.path.isdir(base_path):
        return []
    versions = []
    for name in os.listdir(base_path):
        if name.isdigit() and os.path.isfile(os.path.join(base_path, name, "saved_model.pb")):
            versions.append(int(name))
    return sorted(versions)


@dataclass(eq=False)  # hashed by identity: a batching key
class LoadedVersion:
    """One version's TF1 session; ``users`` counts requests in flight so a swap never closes it under them."""

    version: int
    session: tf.compat.v1.Session
    signatures: dict
    users: int = 0
    retired: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acquire(self) -> bool:
        with self.lock:
            if self.retired:
                return False
            self.users += 1
            return True

    def release(self) -> None:
        with self.lock:
            self.users -= 1
            close = self.retired and self.users == 0
        if close:
            self.session.close()

    def retire(self) -> None:
        with self.lock:
            self.retired = True
            close = self.users == 0
        if close:
            self.session.close()


def session_config() -> tf.compat.v1.ConfigProto:
    """The session options tf-qa serves with (TF Serving takes the same ConfigProto in its platform config).

    Grappler's function optimizer is off: it lowers the model's while loop over window groups into TF1
    control flow, which runs the groups one after another; the functional loop overlaps them, as TF2 does
    (measured: 24.6 -> 27.8 questions/s at batch 16 on 2 cores).
    """
    config = tf.compat.v1.ConfigProto()
    config.graph_options.rewrite_options.function_optimization = rewriter_config_pb2.RewriterConfig.OFF
    return config


def load_session(path: str) -> tuple[tf.compat.v1.Session, dict]:
    """Loads a SavedModel as tensorflow_model_server does: the TF1 loader with the ``serve`` tag.

    Returns the session and the signature defs by name.
    """
    session = tf.compat.v1.Session(graph=tf.Graph(), config=session_config())
    meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
    return session, dict(meta_graph.signature_def)


def run_predict_request(session: tf.compat.v1.Session, signatures: dict, request) -> dict[str, np.ndarray]:
    """Runs a PredictRequest on a session by the signature's tensor names (no validation: trusted requests)."""
    signature = signatures[request.model_spec.signature_name or SERVING_DEFAULT]
    feeds = {signature.inputs[k].name: tf.make_ndarray(v) for k, v in request.inputs.items()}
    names = sorted(signature.outputs)
    return dict(zip(names, session.run([signature.outputs[n].name for n in names], feeds)))


def load_version(base_path: str, version: int, *, warm_up: bool = True) -> LoadedVersion:
    """Loads ``base_path/<version>`` and, like ``--enable_model_warmup``, replays its warmup requests."""
    path = os.path.join(base_path, str(version))
    loaded = LoadedVersion(version, *load_session(path))
    warmup_file = os.path.join(path, "assets.extra", "tf_serving_warmup_requests")
    if warm_up and os.path.exists(warmup_file):
        from tf_qa.export import read_warmup

        started = time.monotonic()
        requests = read_warmup(warmup_file)
        for request in requests:
            run_predict_request(loaded.session, loaded.signatures, request)
        log.info("version %d warmed up with %d requests in %.1fs", version, len(requests), time.monotonic() - started)
    return loaded


class ModelRepository:
    """The loaded versions of one model, refreshed from disk by ``poll``."""

    def __init__(self, base_path: str, model_name: str, versions: list[int] | None = None):
        self.base_path = base_path
        self.model_name = model_name
        self.pinned_versions = versions
        self._versions: dict[int, LoadedVersion] = {}
        self._lock = threading.Lock()

    def wanted(self) -> list[int]:
        available = version_folders(self.base_path)
        if self.pinned_versions:
            return [v for v in available if v in self.pinned_versions]
        return available[-1:]

    def poll(self) -> None:
        """Loads wanted versions not loaded yet, then retires the ones no longer wanted."""
        wanted = self.wanted()
        for version in wanted:
            if version not in self._versions:
                try:
                    loaded = load_version(self.base_path, version)
                except Exception as error:  # a broken version must not take the server down
                    log.error("could not load %s version %d: %s", self.model_name, version, error)
                    continue
                with self._lock:
                    self._versions[version] = loaded
                log.info("serving %s version %d", self.model_name, version)
        with self._lock:
            stale = [v for v in self._versions if v not in wanted and len(self._versions) > 1]
            retired = [self._versions.pop(v) for v in stale]
        for loaded in retired:
            log.info("retiring %s version %d", self.model_name, loaded.version)
            loaded.retire()

    def acquire(self, version: int | None) -> LoadedVersion:
        """The asked-for version (newest when None), held until ``release``; raises LookupError."""
        while True:
            with self._lock:
                if not self._versions:
                    raise LookupError(f"no version of model {self.model_name} is loaded")
                chosen = self._versions.get(version) if version is not None else self._versions[max(self._versions)]
            if chosen is None:
                raise LookupError(f"version {version} of model {self.model_name} is not loaded")
            if chosen.acquire():
                return chosen

    def requests_in_flight(self) -> int:
        """Requests holding a loaded version right now."""
        with self._lock:
            return sum(v.users for v in self._versions.values())

    def statuses(self) -> list[int]:
        with self._lock:
            return sorted(self._versions)

    def close(self) -> None:
        with self._lock:
            loaded, self._versions = list(self._versions.values()), {}
        for version in loaded:
            version.retire()


def graph_error_message(message: str) -> str:
    """The graph's own assertion message (which names the problem), without TF's node trace around it."""
    marker = "assertion failed: "
    if marker in message:
        message = message[message.index(marker) + len(marker):]
    return message.split("\n\t [[")[0].strip()


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str):
    context.abort(code, message)


class RequestError(Exception):
    """A request the server refuses; ``code`` is the gRPC status (REST maps it to an HTTP status)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


def _dtype_name(dtype) -> str:
    return tf.dtypes.as_dtype(dtype).name


class Predictor:
    """Validates and runs Predict requests as TF Serving does; shared by the gRPC and REST front ends.

    Args:
        repository: the loaded versions.
        batcher: merges concurrent requests when given.
    """

    def __init__(self, repository: ModelRepository, batcher: RequestBatcher | None = None):
        self.repository = repository
        self.batcher = batcher

    @staticmethod
    def run(key, feeds: dict) -> list:
        """Runs one request (or a merged batch) on a version's session; ``key`` = (version, signature, outputs)."""
        loaded, name, outputs = key
        signature = loaded.signatures[name]
        return loaded.session.run([signature.outputs[o].name for o in outputs], feeds)

    def acquire(self, model_name: str, version: int | None) -> LoadedVersion:
        """The version to answer with (release it after); RequestError NOT_FOUND when there is none."""
        if model_name != self.repository.model_name:
            raise RequestError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({model_name})")
        try:
            return self.repository.acquire(version)
        except LookupError as error:
            raise RequestError(grpc.StatusCode.NOT_FOUND, str(error)) from None

    def predict(self, loaded: LoadedVersion, signature_name: str, inputs: dict[str, np.ndarray],
                output_filter: list[str] | None = None) -> tuple[list[str], list[np.ndarray]]:
        """Checks the inputs against the signature, runs it, returns (output names, values)."""
        name = signature_name or SERVING_DEFAULT
        signature = loaded.signatures.get(name)
        if signature is None:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Serving signature name: \"{name}\" not found in signature def")
        missing = sorted(set(signature.inputs) - set(inputs))
        extra = sorted(set(inputs) - set(signature.inputs))
        if missing or extra:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input keys do not match signature {name!r}: missing {missing}, unexpected {extra}; "
                               f"expected {sorted(signature.inputs)}")
        feeds = {}
        for key, value in inputs.items():
            expected = signature.inputs[key].dtype
            got = tf.string if value.dtype == object else tf.dtypes.as_dtype(value.dtype)
            if got != tf.dtypes.as_dtype(expected):
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {key!r} has dtype {got.name}, signature {name!r} expects "
                                   f"{_dtype_name(expected)}")
            feeds[signature.inputs[key].name] = value
        outputs = sorted(output_filter or signature.outputs)
        unknown = [o for o in outputs if o not in signature.outputs]
        if unknown:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"output_filter names unknown outputs {unknown}")
        key = (loaded, name, tuple(outputs))
        try:
            values = self.batcher.submit(key, feeds) if self.batcher else self.run(key, feeds)
        except tf.errors.InvalidArgumentError as error:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, graph_error_message(error.message)) from None
        except ValueError as error:  # e.g. a feed of the wrong rank
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from None
        except tf.errors.OpError as error:
            raise RequestError(grpc.StatusCode.INTERNAL, error.message) from None
        return outputs, [np.asarray(v) for v in values]


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata; the other methods keep the base class's UNIMPLEMENTED."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    def _version(self, spec, context) -> LoadedVersion:
        if spec.HasField("version_label"):
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "version labels are not supported by this server")
        try:
            return self.predictor.acquire(spec.name, spec.version.value if spec.HasField("version") else None)
        except RequestError as error:
            _abort(context, error.code, str(error))

    def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:
        loaded = self._version(request.model_spec, context)
        try:
            inputs = {}
            for key, tensor in request.inputs.items():
                try:
                    inputs[key] = tf.make_ndarray(tensor)
                except Exception as error:  # any malformed TensorProto
                    raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                       f"input {key!r} is not a valid tensor: {error}") from None
            outputs, values = self.predictor.predict(loaded, request.model_spec.signature_name, inputs,
                                                     list(request.output_filter))
            response = predict_pb2.PredictResponse()
            response.model_spec.name = self.predictor.repository.model_name
            response.model_spec.version.value = loaded.version
            response.model_spec.signature_name = request.model_spec.signature_name or SERVING_DEFAULT
            for output, value in zip(outputs, values):
                response.outputs[output].CopyFrom(tf.make_tensor_proto(value))
            return response
        except RequestError as error:
            _abort(context, error.code, str(error))
        finally:
            loaded.release()

    def GetModelMetadata(self, request, context):
        if list(request.metadata_field) != ["signature_def"]:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "metadata_field must be ['signature_def']")
        loaded = self._version(request.model_spec, context)
        try:
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for key, value in loaded.signatures.items():
                signature_map.signature_def[key].CopyFrom(value)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = self.predictor.repository.model_name
            response.model_spec.version.value = loaded.version
            response.metadata["signature_def"].Pack(signature_map)
            return response
        finally:
            loaded.release()


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus; HandleReloadConfigRequest keeps the base class's UNIMPLEMENTED."""

    def __init__(self, repository: ModelRepository):
        self.repository = repository

    def GetModelStatus(self, request, context):
        if request.model_spec.name != self.repository.model_name:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {request.model_spec.name}")
        versions = self.repository.statuses()
        if request.model_spec.HasField("version"):
            versions = [v for v in versions if v == request.model_spec.version.value]
            if not versions:
                _abort(context, grpc.StatusCode.NOT_FOUND,
                       f"Could not find version {request.model_spec.version.value} of model {request.model_spec.name}")
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in versions:
            status = response.model_version_status.add()
            status.version = version
            status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response


class ModelServer:
    """Serves one model's versions from ``model_base_path`` over TF Serving's gRPC API.

    Args:
        model_base_path: folder of numeric version folders (``export/NAME``).
        model_name: the name requests use in ``model_spec.name``.
        port: gRPC port (0 picks a free one; see ``port`` after ``start``).
        host: address to bind.
        versions: versions to serve (default: the newest).
        poll_seconds: how often to look for new versions (0 disables polling).
        max_workers: request threads.
        credentials: ``grpc.ssl_server_credentials(...)`` to serve TLS; plaintext when None.
        batching: merge concurrent requests (``RequestBatcher`` options: max_batch_size, timeout,
            num_threads), as TF Serving's ``--enable_batching``; None runs each request on its own.
        rest_port: also serve TF Serving's REST API on this port (0 picks a free one; see ``rest_port``).
    """

    def __init__(self, model_base_path: str, model_name: str, *, port: int = 8500, host: str = "127.0.0.1",
                 versions: list[int] | None = None, poll_seconds: float = 2.0, max_workers: int = 16,
                 credentials: grpc.ServerCredentials | None = None, batching: dict | None = None,
                 rest_port: int | None = None):
        self.repository = ModelRepository(model_base_path, model_name, versions)
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.health = health.HealthServicer()
        options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), options=options)
        self.batcher = None
        if batching is not None:
            self.batcher = RequestBatcher(Predictor.run, **batching,
                                          is_invalid_argument=lambda e: isinstance(e, tf.errors.InvalidArgumentError))
        self.predictor = Predictor(self.repository, self.batcher)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(self.predictor), self.server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(self.repository), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            ["tensorflow.serving.PredictionService", "tensorflow.serving.ModelService",
             health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            self.server,
        )
        address = f"{host}:{port}"
        self.port = (self.server.add_secure_port(address, credentials) if credentials
                     else self.server.add_insecure_port(address))
        if self.port == 0:
            raise OSError(f"could not bind {host}:{port}")
        self.rest = None
        if rest_port is not None:
            from tf_qa.rest import RestServer

            self.rest = RestServer(self.predictor, host, rest_port)
        self.rest_port = self.rest.port if self.rest else None

    def start(self) -> "ModelServer":
        """Loads the model (raises if no version loads), starts serving and polling."""
        self.repository.poll()
        if not self.repository.statuses():
            raise RuntimeError(f"no loadable version under {self.repository.base_path}")
        self.server.start()
        if self.rest:
            self.rest.start()
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.health.set("tensorflow.serving.PredictionService", health_pb2.HealthCheckResponse.SERVING)
        if self.poll_seconds > 0:
            self._poller = threading.Thread(target=self._poll_forever, name="version-poller", daemon=True)
            self._poller.start()
        return self

    def _poll_forever(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.repository.poll()

    def stop(self, grace: float = 5.0) -> None:
        """Stops taking requests, lets those in flight finish (up to ``grace`` seconds), unloads."""
        self._stop.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        if self.rest:
            self.rest.stop()
        if self.batcher:
            self.batcher.close()
        self.repository.close()

    def wait(self) -> None:
        """Blocks until SIGTERM or SIGINT, then stops cleanly."""
        stopped = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopped.set())
        stopped.wait()
        log.info("stopping")
        self.stop()
