"""``tf-qa serve`` in a process of its own, for the client suite (see conftest.py)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

#: A Python with the full install, to run the servers (by default this one).
SERVER_PYTHON = os.environ.get("TF_QA_SERVER_PYTHON", sys.executable)
MODEL_NAME = "tiny-qa"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve(repository: Path, *args: str, port: int | None = None, log_file: Path | None = None):
    """``tf-qa serve`` in a process of its own; yields (gRPC port, REST port or None) once it serves, and checks
    that it stops cleanly (exit code 0) on SIGTERM. ``log_file``: where its log lines go (else nowhere)."""
    port = port or free_port()
    command = [
        SERVER_PYTHON,
        "-m",
        "tf_qa.cli",
        "serve",
        "--model-base-path",
        str(repository),
        "--model-name",
        MODEL_NAME,
        "--port",
        str(port),
        "--poll-seconds",
        "0",
        *args,
    ]
    log = open(log_file, "w") if log_file else subprocess.DEVNULL
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        deadline = time.monotonic() + 120
        line = ""
        while not line.startswith("serving "):
            line = process.stdout.readline()
            assert line or process.poll() is None, f"tf-qa serve exited with {process.returncode}"
            assert time.monotonic() < deadline, "tf-qa serve did not start in 120 s"
        rest = re.search(r"REST on [\w.]+:(\d+)", line)
        yield port, int(rest.group(1)) if rest else None
    finally:
        process.terminate()  # SIGTERM, as a deployment stops a server: it must stop cleanly
        code = process.wait(30)
        if log_file:
            log.close()
    assert code == 0, f"tf-qa serve exited with {code} on SIGTERM"
