"""Request logs as TF Serving defines them: ``PredictionLog`` records (the request and its response) in TFRecord
files, for the models whose config has a ``logging_config`` (``sampling_config.sampling_rate``,
``log_collector_config.filename_prefix``).

Files are ``{filename_prefix}-{n:05d}.tfrecord``, a new one past ``max_bytes``. Logging never blocks or fails a
request: records go through a bounded queue to one writer thread; a full queue drops the record, a write that
fails (full disk, a folder that cannot be written) drops it too, and both are counted (``tf_qa_request_log_*``)
and logged once. ``tf_qa.saved_model.warmup.read_prediction_logs`` reads the files back (``tf-qa compare``,
``tf-qa batch``).

Example:

>>> logger = RequestLogger("qa", "/tmp/logs/qa", sampling_rate=1.0)                          # doctest: +SKIP
>>> if logger.sampled():                                                                   # doctest: +SKIP
...     logger.write(request, response)
>>> logger.close()                                                                         # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time

import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from tf_qa.server.metrics import ServerMetrics

log = logging.getLogger("tf_qa.server.request_log")

#: Size of one log file before the next one is started.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: Records waiting for the writer; past this, new ones are dropped (and counted) rather than held.
QUEUE_RECORDS = 1024


class RequestLogger:
    """Writes a sample of one model's Predict requests and responses."""

    def __init__(
        self,
        model_name: str,
        filename_prefix: str,
        sampling_rate: float,
        metrics: ServerMetrics | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ):
        if not filename_prefix:
            raise ValueError(f"model {model_name!r}: logging_config has no log_collector_config.filename_prefix")
        if not 0 <= sampling_rate <= 1:
            raise ValueError(f"model {model_name!r}: sampling_rate must be in [0, 1]; got {sampling_rate}")
        self.model_name, self.filename_prefix, self.sampling_rate = model_name, filename_prefix, sampling_rate
        self.metrics = metrics or ServerMetrics()
        self.max_bytes = max_bytes
        self.config = None  # the logging_config it was made from, to tell a changed one
        self._queue: queue.Queue = queue.Queue(QUEUE_RECORDS)
        self._warned: set[str] = set()
        self._writer, self._written, self._file_index = None, 0, self._first_free_index()
        self._thread = threading.Thread(target=self._write_forever, name=f"request-log-{model_name}", daemon=True)
        self._thread.start()

    def sampled(self) -> bool:
        """Whether to log the next request (``sampling_rate`` of them); ask before building what ``write`` takes."""
        return self.sampling_rate >= 1 or random.random() < self.sampling_rate

    def write(self, request, response, traceparent: str | None = None) -> None:
        """Queues a PredictRequest and its PredictResponse as one PredictionLog; never blocks, never raises.
        TF Serving's ``LogMetadata`` has no trace field: the caller's W3C ``traceparent`` goes in its
        ``request_origin`` as ``traceparent=<value>``."""
        record = prediction_log_pb2.PredictionLog()
        if traceparent:
            record.log_metadata.request_origin = f"traceparent={traceparent}"
        record.log_metadata.model_spec.CopyFrom(response.model_spec)
        record.log_metadata.sampling_config.sampling_rate = self.sampling_rate
        record.log_metadata.timestamp_secs = int(time.time())
        record.predict_log.request.CopyFrom(request)
        record.predict_log.response.CopyFrom(response)
        try:
            self._queue.put_nowait(record.SerializeToString())
        except queue.Full:
            self.dropped("queue_full", f"the queue of {QUEUE_RECORDS} records is full")

    def dropped(self, reason: str, detail: str) -> None:
        self.metrics.request_log_dropped.labels(self.model_name, reason).inc()
        if reason not in self._warned:  # once per reason: a full disk must not flood the server's log
            self._warned.add(reason)
            log.error(
                "request log of %s: dropping records (%s); requests are answered as usual", self.model_name, detail
            )

    def _first_free_index(self) -> int:
        index = 0
        while os.path.exists(self._path(index)):
            index += 1
        return index

    def _path(self, index: int) -> str:
        return f"{self.filename_prefix}-{index:05d}.tfrecord"

    def _write_forever(self) -> None:
        while True:
            record = self._queue.get()
            if record is None:
                break
            try:
                self._write(record)
            except (OSError, tf.errors.OpError) as error:
                self._writer = None  # try a fresh file next time: the folder may be writable again
                self.dropped("write_error", f"cannot write {self._path(self._file_index)}: {error}")
        if self._writer is not None:
            self._writer.close()

    def _write(self, record: bytes) -> None:
        if self._writer is not None and self._written + len(record) > self.max_bytes:
            self._writer.close()
            self._writer, self._file_index = None, self._file_index + 1
        if self._writer is None:
            os.makedirs(os.path.dirname(self.filename_prefix) or ".", exist_ok=True)
            self._writer, self._written = tf.io.TFRecordWriter(self._path(self._file_index)), 0
        self._writer.write(record)
        self._writer.flush()
        self._written += len(record) + 16  # TFRecord framing: length, its CRC, the data's CRC
        self.metrics.request_log_records.labels(self.model_name).inc()

    def close(self) -> None:
        """Writes what is queued and closes the file."""
        self._queue.put(None)
        self._thread.join(timeout=10)


def request_logger(model_name: str, logging_config, metrics: ServerMetrics) -> RequestLogger | None:
    """The logger a model's ``logging_config`` asks for (None without one); ValueError for one it cannot run."""
    if logging_config is None:
        return None
    rate = logging_config.sampling_config.sampling_rate
    logger = RequestLogger(model_name, logging_config.log_collector_config.filename_prefix, rate, metrics)
    logger.config = logging_config
    return logger
