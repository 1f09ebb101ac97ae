"""The versions of one model that a server holds: discovery on disk, loading with warmup, safe swaps.

A version is a numeric folder under the model's base path holding a complete SavedModel (TF Serving's layout).
Requests hold the version they run on (``acquire``/``release``), so a swap to a newer version never closes a
session under a request in flight.

Example:

>>> repository = ModelRepository("export/distilbert-squad", "distilbert-squad")      # doctest: +SKIP
>>> repository.poll(); repository.statuses()                                         # doctest: +SKIP
[1]
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import threading
import time
from dataclasses import dataclass, field

import tensorflow as tf

from tf_qa.defaults import DEFAULT_DOC_STRIDE, DEFAULT_MAX_SEQ_LEN
from tf_qa.saved_model.layout import read_export_record, version_folders, warmup_file
from tf_qa.saved_model.session import load_session, run_predict_request
from tf_qa.saved_model.warmup import read_warmup
from tf_qa.server.metrics import ServerMetrics
from tf_qa.server.model_config import VersionPolicy

log = logging.getLogger("tf_qa.server")


@dataclass(eq=False)  # hashed by identity: a batching key
class LoadedVersion:
    """One version's TF1 session; ``users`` counts requests in flight so a swap never closes it under them."""

    model_name: str
    version: int
    session: tf.compat.v1.Session
    signatures: dict
    load_seconds: float = 0.0
    warmup_seconds: float | None = None  # None: no warmup file
    #: The window geometry the export records (the pipeline's defaults when it has no record): the server
    #: estimates a request's work with it before the request runs.
    max_seq_len: int = DEFAULT_MAX_SEQ_LEN
    doc_stride: int = DEFAULT_DOC_STRIDE
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
            self._unload()

    def retire(self) -> None:
        with self.lock:
            self.retired = True
            close = self.users == 0
        if close:
            self._unload()

    def _unload(self) -> None:
        """Closes the session and hands its memory back, so that version swaps do not grow the server."""
        self.session.close()
        self.session, self.signatures = None, {}
        gc.collect()
        _return_free_heap()


def _return_free_heap() -> None:
    """glibc keeps freed heap pages for reuse; a retired version's are returned to the OS (elsewhere: nothing)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def load_version(
    base_path: str, version: int, *, model_name: str = "", warm_up: bool = True, session_config=None
) -> LoadedVersion:
    """Loads ``base_path/<version>`` and, like ``--enable_model_warmup``, replays its warmup requests.

    ``session_config``: the ConfigProto to load with (default: the platform config's).
    """
    path = os.path.join(base_path, str(version))
    started = time.monotonic()
    loaded = LoadedVersion(model_name, version, *load_session(path, session_config))
    loaded.load_seconds = time.monotonic() - started
    options = (read_export_record(path) or {}).get("options", {})
    loaded.max_seq_len = options.get("max_seq_len", DEFAULT_MAX_SEQ_LEN)
    loaded.doc_stride = options.get("doc_stride", DEFAULT_DOC_STRIDE)
    warmup = warmup_file(path)
    if warm_up and warmup.exists():
        started = time.monotonic()
        requests = read_warmup(warmup)
        for request in requests:
            run_predict_request(loaded.session, loaded.signatures, request)
        loaded.warmup_seconds = time.monotonic() - started
        log.info("version %d warmed up with %d requests in %.1fs", version, len(requests), loaded.warmup_seconds)
    return loaded


class ModelRepository:
    """The loaded versions of one model, refreshed from disk by ``poll``; ``labels`` name versions
    (``version_labels``). ``policy``: which versions to hold (default: the newest)."""

    def __init__(
        self,
        base_path: str,
        model_name: str,
        policy: VersionPolicy | None = None,
        session_config=None,
        metrics: ServerMetrics | None = None,
        labels: dict[str, int] | None = None,
    ):
        self.base_path = base_path
        self.model_name = model_name
        self.policy = policy or VersionPolicy()
        self.labels = dict(labels or {})
        self.session_config = session_config
        self.metrics = metrics or ServerMetrics()
        self._versions: dict[int, LoadedVersion] = {}
        self._lock = threading.Lock()

    def wanted(self) -> list[int]:
        return self.policy.choose(version_folders(self.base_path))

    def poll(self) -> None:
        """Loads wanted versions not loaded yet, then retires the ones no longer wanted."""
        wanted = self.wanted()
        for version in wanted:
            if version not in self._versions:
                path = os.path.join(self.base_path, str(version))
                try:
                    loaded = load_version(
                        self.base_path, version, model_name=self.model_name, session_config=self.session_config
                    )
                except Exception as error:  # noqa: BLE001  a broken version must not take the server down
                    log.error("could not load %s version %d: %s", self.model_name, version, error)
                    self.metrics.observe_load(path, False, 0.0, None)
                    continue
                self.metrics.observe_load(path, True, loaded.load_seconds, loaded.warmup_seconds)
                with self._lock:
                    self._versions[version] = loaded
                log.info("serving %s version %d", self.model_name, version)
        with self._lock:
            stale = [v for v in self._versions if v not in wanted and len(self._versions) > 1]
            retired = [self._versions.pop(v) for v in stale]
        for loaded in retired:
            log.info("retiring %s version %d", self.model_name, loaded.version)
            loaded.retire()

    def version_of(self, label: str) -> int:
        """The version ``label`` names; LookupError naming the labels there are."""
        labels = dict(self.labels)
        if label not in labels:
            known = ", ".join(f"{name} -> {version}" for name, version in sorted(labels.items())) or "none"
            raise LookupError(f"model {self.model_name} has no version label {label!r} (its labels: {known})")
        return labels[label]

    def acquire(self, version: int | None, label: str | None = None) -> LoadedVersion:
        """The asked-for version (by number or label; the newest when neither), held until ``release``; raises
        LookupError."""
        if label is not None:
            version = self.version_of(label)
        while True:
            with self._lock:
                if not self._versions:
                    raise LookupError(f"no version of model {self.model_name} is loaded")
                chosen = self._versions.get(version) if version is not None else self._versions[max(self._versions)]
            if chosen is None:
                named = f" (label {label!r})" if label is not None else ""
                raise LookupError(f"version {version}{named} of model {self.model_name} is not loaded")
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
