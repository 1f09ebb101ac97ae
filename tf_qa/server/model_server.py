"""A small server that speaks TensorFlow Serving's gRPC API, for development, tests and machines without
``tensorflow_model_server``. **Production uses the stock tensorflow_model_server**; this server runs a
SavedModel the way it does (TF1 session, the signature's tensor names) so that the same client and the same
end-to-end tests work against both.

What it serves, for one model (``--model-base-path``) or those of a model config file (``--model-config-file``,
with version policies and labels, read again every ``--model-config-file-poll-wait-seconds``):

* ``PredictionService.Predict`` and ``GetModelMetadata`` (``signature_def``); ``Classify``, ``Regress`` and
  ``MultiInference`` answer UNIMPLEMENTED.
* ``ModelService.GetModelStatus``.
* gRPC health checking (``grpc.health.v1``) and server reflection;
* optionally TF Serving's REST API (``tf_qa.server.rest``).

It loads the newest numeric version folder under the base path (or the versions asked for), polls for new
ones and swaps to them without failing requests in flight (``tf_qa.server.repository``), validates requests as
TF Serving does (``tf_qa.server.predictor``: missing or extra inputs, wrong dtype or rank: INVALID_ARGUMENT) and
stops cleanly on SIGTERM. It protects itself as tensorflow_model_server does: a request's deadline is its session's
run timeout, a bounded number of requests run at once (more are refused at once with RESOURCE_EXHAUSTED, never
queued), and messages are capped in size.

Example:

>>> server = ModelServer(ServeOptions(model_base_path="export/demo", model_name="demo", port=0))  # doctest: +SKIP
>>> server.start(); print(server.port)                        # doctest: +SKIP
"""

from __future__ import annotations

import logging
import signal
import ssl
import threading
import time
from concurrent import futures

import grpc
import tensorflow as tf
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tf_qa.defaults import MAX_MESSAGE_BYTES
from tf_qa.errors import PUSHBACK_TRAILER, SetupError, TFQAError, UsageError
from tf_qa.saved_model.platform_config import read_platform_config
from tf_qa.saved_model.session import use_session_threads
from tf_qa.server.batching import RequestBatcher, batching_options
from tf_qa.server.metrics import ServerMetrics, monitoring_path
from tf_qa.server.model_config import ServedModel, VersionPolicy, read_model_config
from tf_qa.server.options import ServeOptions, serve_flag
from tf_qa.server.predictor import Predictor, predict_response, tensor_from_proto
from tf_qa.server.repository import LoadedVersion, ModelRepository
from tf_qa.server.request_log import RequestLogger, request_logger
from tf_qa.server.rest import RestServer
from tf_qa.server.ssl_config import ServerTLS, read_ssl_config
from tf_qa.tracing import checked_traceparent

log = logging.getLogger("tf_qa.server")


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str):
    context.abort(code, message)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata; the other methods keep the base class's UNIMPLEMENTED."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    def _version(self, spec) -> LoadedVersion:
        """The version the spec asks for (number, label or the newest), held until released; TFQAError when there
        is none."""
        version = spec.version.value if spec.HasField("version") else None
        label = spec.version_label if spec.HasField("version_label") else None
        return self.predictor.acquire(spec.name, version, label)

    def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        traceparent = checked_traceparent(dict(context.invocation_metadata()).get("traceparent"))
        try:
            with self.predictor.serving(request.model_spec.name, "GRPC", traceparent), self.predictor.admit():
                return self._predict(request, deadline, traceparent)
        except TFQAError as error:
            if getattr(error, "retry_after", None) is not None:  # when to come back, as gRPC's retry pushback
                context.set_trailing_metadata(((PUSHBACK_TRAILER, str(max(1, round(error.retry_after * 1000)))),))
            _abort(context, error.code, str(error))

    def _predict(self, request: predict_pb2.PredictRequest, deadline: float | None, traceparent: str | None):
        loaded = self._version(request.model_spec)
        try:
            inputs = {
                key: tensor_from_proto(key, tensor, self.predictor.max_request_bytes)
                for key, tensor in request.inputs.items()
            }
            outputs, values = self.predictor.predict(
                loaded, request.model_spec.signature_name, inputs, list(request.output_filter), deadline, traceparent
            )
        finally:
            loaded.release()
        return predict_response(loaded, request.model_spec.signature_name, outputs, values)

    def GetModelMetadata(self, request, context):
        if list(request.metadata_field) != ["signature_def"]:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "metadata_field must be ['signature_def']")
        try:
            loaded = self._version(request.model_spec)
        except TFQAError as error:
            _abort(context, error.code, str(error))
        try:
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = loaded.model_name
            response.model_spec.version.value = loaded.version
            response.metadata["signature_def"].Pack(self.predictor.signature_map(loaded))
            return response
        finally:
            loaded.release()


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus; HandleReloadConfigRequest keeps the base class's UNIMPLEMENTED."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    def GetModelStatus(self, request, context):
        spec = request.model_spec
        try:
            versions = self.predictor.versions(spec.name, spec.version.value if spec.HasField("version") else None)
        except TFQAError as error:
            _abort(context, error.code, str(error))
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in versions:
            status = response.model_version_status.add()
            status.version = version
            status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response


class ServeSetupError(SetupError):
    """What the server cannot start with although the options are right: an unreadable TLS file (a config file
    that is wrong, a label of a version not loaded: ``UsageError``)."""


def _read_text(options: ServeOptions, name: str) -> str:
    path = getattr(options, name)
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise ServeSetupError(
            f"cannot read {serve_flag(name)} {path}: {getattr(error, 'strerror', None) or error}"
        ) from None


def server_tls(options: ServeOptions) -> ServerTLS | None:
    """The TLS of ``--ssl-config-file`` (TF Serving's SSLConfig) or of ``--ssl-cert`` and ``--ssl-key``; None
    (plaintext) without them."""
    if options.ssl_config_file:
        try:
            return read_ssl_config(options.ssl_config_file)
        except ValueError as error:
            raise UsageError(str(error)) from None
    if not options.ssl_cert:
        return None
    tls = ServerTLS(_read_text(options, "ssl_key"), _read_text(options, "ssl_cert"))
    try:
        tls.ssl_context()
    except (ssl.SSLError, ValueError) as error:
        raise ServeSetupError(f"{serve_flag('ssl_cert')}/{serve_flag('ssl_key')}: {error}") from None
    return tls


def session_and_batching(options: ServeOptions) -> tuple:
    """The platform config's session options, and the batcher's options when ``enable_batching`` (the
    platform config's batching parameters, the batching flags taking precedence)."""
    try:
        platform = read_platform_config(options.platform_config_file)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not options.enable_batching:
        return platform.session_config, None
    overrides = {
        "max_batch_size": options.max_batch_size,
        "timeout_micros": options.batch_timeout_micros,
        "num_threads": options.num_batch_threads,
    }
    return platform.session_config, batching_options(platform.batching_parameters, **overrides)


def served_models(options: ServeOptions) -> list[ServedModel]:
    """The models to serve: the model config file's, or the one of ``--model-base-path`` and ``--model-name``."""
    if options.model_config_file:
        try:
            return read_model_config(options.model_config_file)
        except ValueError as error:
            raise UsageError(str(error)) from None
    policy = VersionPolicy("specific", tuple(options.versions)) if options.versions else VersionPolicy()
    return [ServedModel(options.model_name, options.model_base_path, policy)]


def _metrics_path(options: ServeOptions) -> str | None:
    """Where the monitoring config puts Prometheus metrics (None without one, or with Prometheus off)."""
    if not options.monitoring_config_file:
        return None
    try:
        return monitoring_path(options.monitoring_config_file)
    except ValueError as error:
        raise UsageError(str(error)) from None


class ModelServer:
    """Serves one model's versions over TF Serving's gRPC API (and its REST API when ``rest_api_port`` is set),
    as ``options`` (``ServeOptions``, see there for each) say. Port 0 picks a free port: see ``port`` and
    ``rest_port`` after construction. Raises ``ServeSetupError`` for options it cannot start with."""

    def __init__(self, options: ServeOptions):
        self.options = options
        tls = server_tls(options)
        self.session_config, batching = session_and_batching(options)
        if not use_session_threads(self.session_config):
            log.warning(
                "TensorFlow ran in this process before the server: its thread pools keep their sizes, not the"
                " platform config's (intra_op_parallelism_threads %d)",
                self.session_config.intra_op_parallelism_threads,
            )
        self.models = served_models(options)
        self.metrics = ServerMetrics()
        self.predictor = Predictor(
            {},
            None,
            options.max_in_flight,
            options.max_request_bytes,
            metrics=self.metrics,
            max_windows_in_flight=options.max_windows_in_flight,
        )
        self.poll_seconds = options.poll_seconds
        self._stop = threading.Event()
        self._pollers: list[threading.Thread] = []
        self._config_lock = threading.Lock()
        self.health = health.HealthServicer()
        self.batcher = None
        if batching is not None:
            self.batcher = self.predictor.batcher = RequestBatcher(
                self.predictor.run,
                **batching,
                is_invalid_argument=lambda e: isinstance(e, tf.errors.InvalidArgumentError),
            )
        self.server = self._grpc_server(options.max_in_flight, options.max_request_bytes)
        address = f"{options.host}:{options.port}"
        self.port = (
            self.server.add_secure_port(address, tls.grpc_credentials())
            if tls
            else self.server.add_insecure_port(address)
        )
        if self.port == 0:
            raise OSError(f"could not bind {address}")
        rest_port = options.rest_api_port
        metrics_path = _metrics_path(options)
        self.rest = None
        if rest_port is not None:
            self.rest = RestServer(
                self.predictor,
                options.host,
                rest_port,
                options.rest_timeout,
                metrics_path,
                tls.ssl_context() if tls else None,
            )
        self.rest_port = self.rest.port if self.rest else None

    @property
    def repositories(self) -> dict[str, ModelRepository]:
        return self.predictor.repositories

    @property
    def repository(self) -> ModelRepository:
        """The first model's repository (the only one without a model config file)."""
        return next(iter(self.repositories.values()))

    def apply_models(self, models: list[ServedModel], *, strict: bool = False) -> None:
        """Serves exactly ``models``: new ones loaded, changed ones given their policy and labels, dropped ones
        unloaded. A label naming a version not loaded is refused as TF Serving refuses it: ``strict`` (at start)
        raises UsageError; on a reload the label keeps its old version and the error is logged. A logging config
        the server cannot run raises UsageError before anything changes."""
        with self._config_lock:
            loggers = self._request_loggers(models)
            current, serving = self.repositories, {}
            for model in models:
                repository = current.get(model.name)
                if repository is None or repository.base_path != model.base_path:
                    repository = ModelRepository(
                        model.base_path, model.name, model.policy, self.session_config, self.metrics
                    )
                repository.policy = model.policy
                repository.poll()
                repository.labels = self._checked_labels(repository, model.labels, strict)
                serving[model.name] = repository
            old_loggers = self.predictor.request_loggers
            self.predictor.repositories, self.predictor.request_loggers = serving, loggers
        for name, repository in current.items():
            if serving.get(name) is not repository:
                repository.close()
        for name, logger in old_loggers.items():
            if loggers.get(name) is not logger:
                logger.close()

    def _request_loggers(self, models: list[ServedModel]) -> dict[str, RequestLogger]:
        """Each model's logger: the running one while its logging config is unchanged, else a new one."""
        loggers, running = {}, self.predictor.request_loggers
        for model in models:
            if model.name in running and running[model.name].config == model.logging_config:
                loggers[model.name] = running[model.name]
                continue
            try:
                logger = request_logger(model.name, model.logging_config, self.metrics)
            except ValueError as error:
                for made in loggers.values():  # the ones made here stop; the running ones go on
                    if made is not running.get(made.model_name):
                        made.close()
                raise UsageError(str(error)) from None
            if logger is not None:
                loggers[model.name] = logger
        return loggers

    @staticmethod
    def _checked_labels(repository: ModelRepository, labels: dict[str, int], strict: bool) -> dict[str, int]:
        loaded = set(repository.statuses())
        bad = {label: version for label, version in labels.items() if version not in loaded}
        if not bad:
            return dict(labels)
        message = f"model {repository.model_name}: version labels {bad} name versions not loaded ({sorted(loaded)})"
        if strict:
            raise UsageError(message)
        log.error("%s; those labels keep their versions", message)
        kept = {label: version for label, version in repository.labels.items() if label in bad}
        return {**{k: v for k, v in labels.items() if k not in bad}, **kept}

    def _grpc_server(self, max_in_flight: int, max_request_bytes: int) -> grpc.Server:
        """The gRPC server with its services; one thread per admitted call, more calls refused, never queued."""
        # Room beyond the Predict slots for health checks, status and metadata calls.
        max_calls = max_in_flight + 8
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_calls),
            maximum_concurrent_rpcs=max_calls,
            options=[
                ("grpc.max_receive_message_length", max_request_bytes),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(self.predictor), server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(self.predictor), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            [
                "tensorflow.serving.PredictionService",
                "tensorflow.serving.ModelService",
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            server,
        )
        return server

    def start(self) -> ModelServer:
        """Loads the models (raises if one has no loadable version), starts serving and polling."""
        self.apply_models(self.models, strict=True)
        for repository in self.repositories.values():
            if not repository.statuses():
                raise RuntimeError(f"no loadable version under {repository.base_path}")
        self.server.start()
        if self.rest:
            self.rest.start()
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.health.set("tensorflow.serving.PredictionService", health_pb2.HealthCheckResponse.SERVING)
        if self.poll_seconds > 0:
            self._start_poller("version-poller", self.poll_seconds, self._poll_versions)
        if self.options.model_config_file and self.options.model_config_file_poll_wait_seconds > 0:
            self._start_poller("config-poller", self.options.model_config_file_poll_wait_seconds, self.reload_config)
        return self

    def _start_poller(self, name: str, seconds: float, poll) -> None:
        def loop():
            while not self._stop.wait(seconds):
                poll()

        thread = threading.Thread(target=loop, name=name, daemon=True)
        thread.start()
        self._pollers.append(thread)

    def _poll_versions(self) -> None:
        with self._config_lock:
            for repository in self.repositories.values():
                repository.poll()

    def reload_config(self) -> None:
        """Reads the model config file again and applies it; a file that no longer parses, or that the server
        cannot apply, is logged and the running config kept, as TF Serving does."""
        try:
            models = read_model_config(self.options.model_config_file)
        except ValueError as error:
            log.error("%s; still serving the previous config", error)
            return
        if models != self.models:
            log.info("model config changed: %s", ", ".join(f"{m.name} labels {m.labels}" for m in models))
            try:
                self.apply_models(models)
            except TFQAError as error:  # e.g. a logging config it cannot run: the poller must go on
                log.error("%s; still serving the previous config", error)
                return
            self.models = models

    def stop(self, grace: float = 5.0) -> None:
        """Stops taking requests, lets those in flight finish (up to ``grace`` seconds), unloads."""
        self._stop.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        if self.rest:
            self.rest.stop()
        if self.batcher:
            self.batcher.close()
        for repository in self.repositories.values():
            repository.close()
        for logger in self.predictor.request_loggers.values():
            logger.close()

    def wait(self) -> None:
        """Blocks until SIGTERM or SIGINT, then stops cleanly."""
        stopped = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopped.set())
        stopped.wait()
        log.info("stopping")
        self.stop()
