"""The command line's output: tf-qa's own lines only, unless ``--verbose``.

TensorFlow's C++ runtime logs through absl, which writes every message to stderr until it is initialized, so
no log level silences lines such as ``I0000 ... port.cc:153] oneDNN custom operations are on``. ``quiet``
lowers the Python libraries' logging and warnings and passes stderr through a filter that drops those C++
lines (info, warning and error; fatal ones still show), whenever they are written.

Example:

>>> quiet()                                  # doctest: +SKIP
>>> import tensorflow                        # prints nothing
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading
import warnings

#: An absl/glog line below FATAL, and absl's notice that it is not initialized.
_CPP_LOG_LINE = re.compile(
    rb"^(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.\-]+:\d+\] |"
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called)"
)
_LIBRARY_LOGGERS = ("tensorflow", "absl", "h5py", "transformers", "huggingface_hub", "urllib3")


def quiet() -> None:
    """Silences the libraries for the rest of the process; call before they are imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    for category in (DeprecationWarning, FutureWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category)
    for name in _LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    _filter_stderr()


_filtering = False


def _filter_stderr() -> None:
    """Routes file descriptor 2 through a thread that drops C++ log lines and forwards the rest (once a process)."""
    global _filtering
    if _filtering:
        return
    _filtering = True
    sys.stderr.flush()
    terminal = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward():
        with os.fdopen(read_end, "rb") as lines:
            for line in lines:
                if not _CPP_LOG_LINE.match(line):
                    os.write(terminal, line)

    thread = threading.Thread(target=forward, name="stderr-filter", daemon=True)
    thread.start()

    def restore():
        sys.stderr.flush()
        os.dup2(terminal, 2)  # closes the pipe's last writer in this process: the thread drains and ends
        thread.join(timeout=2)

    atexit.register(restore)


class _CountingProgress:
    """What ``progress`` gives where tqdm is not installed (the client-only install): a line every 10%."""

    def __init__(self, total: int, desc: str):
        self.total, self.desc, self.done, self._shown = total, desc, 0, -1

    def update(self, count: int) -> None:
        self.done += count
        tenth = 10 * self.done // max(self.total, 1)
        if tenth != self._shown:
            self._shown = tenth
            print(f"{self.desc}: {self.done}/{self.total}", file=sys.stderr, flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


def progress(total: int, desc: str):
    """A progress bar (tqdm) counting ``total`` items, as a context manager with ``update(count)``."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _CountingProgress(total, desc)
    return tqdm(total=total, unit="q", desc=desc)
