"""``tf-qa serve``'s Prometheus metrics: TF Serving's where TF Serving has them, tf-qa's own beside them.

TF Serving's keep its names, labels and units (microseconds) as its Prometheus exporter writes them, so a
dashboard or alert made for ``tensorflow_model_server`` reads ``tf-qa serve`` unchanged:
``:tensorflow:serving:request_count{model_name,status}``, ``:tensorflow:serving:request_latency`` and
``:tensorflow:serving:runtime_latency`` (histograms), ``:tensorflow:cc:saved_model:load_attempt_count``,
``:tensorflow:cc:saved_model:load_latency`` and ``:tensorflow:serving:model_warmup_latency``. tf-qa's own are
``tf_qa_*``. They are served on the REST port at the path of ``--monitoring-config-file`` (TF Serving's
``MonitoringConfig``; ``monitoring_path`` reads it).

Example:

>>> metrics = ServerMetrics()
>>> with metrics.request("qa", "predict", "GRPC"):
...     pass
>>> b':tensorflow:serving:request_count{model_name="qa",status="OK"} 1.0' in metrics.exposition()
True
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import numpy as np
import prometheus_client
from google.protobuf import text_format
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric

from tf_qa.errors import TFQAError

# No `_created` series: TF Serving has none, and they double the page for no query anyone makes of a server.
prometheus_client.disable_created_metrics()

#: TF Serving's latency buckets, in microseconds: monitoring::Buckets::Exponential(10, 1.8, 33) (~20 minutes).
LATENCY_BUCKETS_US = tuple(10 * 1.8**i for i in range(32))
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_SCORE_BUCKETS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
#: What TF Serving serves metrics at when its config names no path (PrometheusExporter::kPrometheusPath).
DEFAULT_PATH = "/monitoring/prometheus/metrics"


class TFServingCounter:
    """A counter as TF Serving's exporter writes it: the name as it is, no ``_total`` (prometheus_client adds
    one to its own counters, which would rename TF Serving's), so typed ``untyped``; ``rate()`` works alike."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...], registry: CollectorRegistry):
        self.name, self.documentation, self.labelnames = name, documentation, labelnames
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = tuple(str(labels[name]) for name in self.labelnames)
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def collect(self):
        metric = Metric(self.name, self.documentation, "unknown")
        with self._lock:
            values = list(self._values.items())
        for key, value in values:
            metric.add_sample(self.name, dict(zip(self.labelnames, key)), value)
        yield metric


class ServerMetrics:
    """Every metric of one server, labelled by model, in a registry of its own (two servers in a process never
    mix)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self._declare_tf_serving_metrics(self.registry)
        self._declare_tf_qa_metrics(self.registry)

    def _declare_tf_serving_metrics(self, registry: CollectorRegistry) -> None:
        """The metrics TF Serving exports, by its names, labels and units, so its dashboards read them."""
        latency = {"buckets": LATENCY_BUCKETS_US, "registry": registry}
        self.request_count = TFServingCounter(
            ":tensorflow:serving:request_count", "The total number of requests.", ("model_name", "status"), registry
        )
        self.request_latency = Histogram(
            ":tensorflow:serving:request_latency",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ("model_name", "API", "entrypoint"),
            **latency,
        )
        self.runtime_latency = Histogram(
            ":tensorflow:serving:runtime_latency",
            "Distribution of wall time (in microseconds) for Tensorflow runtime.",
            ("model_name", "API", "runtime"),
            **latency,
        )
        self.load_attempt_count = TFServingCounter(
            ":tensorflow:cc:saved_model:load_attempt_count",
            "The number of times a SavedModel was successfully loaded.",
            ("model_path", "status"),
            registry,
        )
        self.load_latency = TFServingCounter(
            ":tensorflow:cc:saved_model:load_latency",
            "Latency in microseconds for SavedModels that were successfully loaded.",
            ("model_path",),
            registry,
        )
        self.warmup_latency = Histogram(
            ":tensorflow:serving:model_warmup_latency",
            "Distribution of wall time (in microseconds) for warming up the model.",
            ("model_path",),
            **latency,
        )

    def _declare_tf_qa_metrics(self, registry: CollectorRegistry) -> None:
        """tf-qa's own metrics: refusals, work and answers per request, the request log."""
        model = ("model_name",)
        self.refused = Counter(
            "tf_qa_requests_refused",
            "Predict requests refused before their work ran, by reason: max_in_flight and max_windows_in_flight "
            "(admission), request_limit (a limit in the graph), deadline (the deadline passed while the request "
            "waited to run).",
            ("model_name", "reason"),
            registry=registry,
        )
        self.in_flight = Gauge(
            "tf_qa_requests_in_flight", "Predict requests admitted and not answered yet.", model, registry=registry
        )
        self.examples = Histogram(
            "tf_qa_examples_per_request",
            "Questions per Predict request.",
            model,
            buckets=_SIZE_BUCKETS,
            registry=registry,
        )
        self.windows = Histogram(
            "tf_qa_windows_per_request",
            "Windows a Predict request's contexts took through the model (its work), from the signature's windows "
            "output.",
            model,
            buckets=_SIZE_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "tf_qa_batch_size",
            "Questions per session run after server-side batching (--enable-batching).",
            model,
            buckets=_SIZE_BUCKETS,
            registry=registry,
        )
        self.answer_score = Histogram(
            "tf_qa_answer_score",
            "Score of each question's top answer.",
            model,
            buckets=_SCORE_BUCKETS,
            registry=registry,
        )
        self.empty_answers = Counter(
            "tf_qa_empty_answers",
            "Questions whose top answer is empty (no valid span, or the impossible answer won).",
            model,
            registry=registry,
        )
        self.request_log_records = Counter(
            "tf_qa_request_log_records", "PredictionLog records written to the request log.", model, registry=registry
        )
        self.request_log_dropped = Counter(
            "tf_qa_request_log_dropped",
            "Sampled requests not logged, by reason: queue_full (the writer fell behind), write_error (full disk, "
            "a folder that cannot be written), encode_error; the requests themselves were answered.",
            ("model_name", "reason"),
            registry=registry,
        )

    @contextmanager
    def request(self, model_name: str, api: str, entrypoint: str):
        """Counts a request by its final status and times it (``entrypoint``: GRPC or REST), as TF Serving does."""
        started = time.perf_counter()
        status = "OK"
        self.in_flight.labels(model_name).inc()
        try:
            yield
        except TFQAError as error:
            status = error.code.name
            reason = getattr(error, "refusal", None)
            if reason is None and error.code.name == "INVALID_ARGUMENT" and "over the limit" in str(error):
                reason = "request_limit"  # the graph's limit checks say so in their message
            if reason:
                self.refused.labels(model_name, reason).inc()
            raise
        except Exception:
            status = "INTERNAL"
            raise
        finally:
            self.in_flight.labels(model_name).dec()
            self.request_count.inc(model_name=model_name, status=status)
            micros = (time.perf_counter() - started) * 1e6
            self.request_latency.labels(model_name, api, entrypoint).observe(micros)

    def observe_run(self, model_name: str, seconds: float, batch_size: int) -> None:
        """One session run: its time (TF Serving's runtime latency) and its questions."""
        self.runtime_latency.labels(model_name, "predict", "TF1").observe(seconds * 1e6)
        self.batch_size.labels(model_name).observe(batch_size)

    def observe_answers(self, model_name: str, outputs: dict[str, np.ndarray]) -> None:
        """Top answers' scores and empty answers, from a text signature's outputs ([B] or [B, K])."""
        if "score" not in outputs or "answer" not in outputs:
            return
        scores, answers = np.asarray(outputs["score"]), np.asarray(outputs["answer"])
        if scores.ndim == 2:
            scores, answers = scores[:, 0], answers[:, 0]
        self.examples.labels(model_name).observe(len(scores))
        if "windows" in outputs:  # exports made before the output existed lack it
            self.windows.labels(model_name).observe(int(np.sum(outputs["windows"])))
        for score in scores:
            self.answer_score.labels(model_name).observe(float(score))
        empty = int(sum(1 for answer in answers if not answer))
        if empty:
            self.empty_answers.labels(model_name).inc(empty)

    def observe_load(self, model_path: str, ok: bool, load_seconds: float, warmup_seconds: float | None) -> None:
        self.load_attempt_count.inc(model_path=model_path, status="success" if ok else "fail")
        if ok:
            self.load_latency.inc(load_seconds * 1e6, model_path=model_path)
        if warmup_seconds is not None:
            self.warmup_latency.labels(model_path).observe(warmup_seconds * 1e6)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)


def monitoring_path(path: str) -> str | None:
    """The metrics path of a ``MonitoringConfig`` text file, None when Prometheus is not enabled there; ValueError
    naming the file and the problem when it cannot be read."""
    from tf_qa.saved_model.platform_config import monitoring_config_class

    try:
        with open(path, encoding="utf-8") as handle:
            config = text_format.Parse(handle.read(), monitoring_config_class()())
    except (OSError, UnicodeDecodeError, text_format.ParseError) as error:
        raise ValueError(f"monitoring config {path}: {error}") from None
    prometheus = config.prometheus_config
    if not prometheus.enable:
        return None
    if prometheus.path and not prometheus.path.startswith("/"):
        raise ValueError(f"monitoring config {path}: prometheus_config.path must start with '/': {prometheus.path!r}")
    return prometheus.path or DEFAULT_PATH
