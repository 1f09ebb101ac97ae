"""Shared by the reliability scripts: seeded exports, and ``tf-qa serve`` in a subprocess whose memory is read.

Example:

>>> repository = export_seeded("/tmp/tf-qa-runs", "tiny")                      # doctest: +SKIP
>>> with Served(repository, rest=True) as served:                             # doctest: +SKIP
...     served.reset_peak(); ...; print(served.peak_rss_mb() - served.rss_mb())
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

MODEL_NAME = "qa"
SIZES = ("tiny", "base")
#: The words of the scripts' synthetic contexts (one token each with the uncased vocab).
WORDS = "the river city north south museum opened century built bridge king queen army war treaty Paris".split()


def random_words(chars: int, seed: int) -> str:
    """A seeded context of ``chars`` characters made of ``WORDS``."""
    import numpy as np

    return " ".join(np.random.default_rng(seed).choice(WORDS, chars // 5 + 1))[:chars]


def export_seeded(workdir: str | os.PathLike, size: str, *extra_export_args: str) -> Path:
    """A seeded checkpoint of ``size`` exported once into ``workdir`` (reused when already there)."""
    workdir = Path(workdir)
    tag = "-".join([size, *[a.lstrip("-") for a in extra_export_args]])
    repository = workdir / f"repo-{tag}" / MODEL_NAME
    if (repository / "1").is_dir():
        return repository
    checkpoint = workdir / f"checkpoint-{size}"
    if not (checkpoint / "config.json").exists():
        code = (
            "import sys; from tf_qa.checkpoints import BASE, make_random_checkpoint; "
            "make_random_checkpoint(sys.argv[1], seed=1234, size=BASE if sys.argv[2] == 'base' else None)"
        )
        subprocess.run([sys.executable, "-c", code, str(checkpoint), size], check=True, stderr=subprocess.DEVNULL)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tf_qa.cli",
            "export",
            "--model",
            str(checkpoint),
            "--output",
            str(repository),
            *extra_export_args,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return repository


def status_mb(pid: int, field: str) -> float:
    """A memory figure of process ``pid`` from /proc/PID/status (``VmRSS:``, ``VmHWM:``, ...), in MB."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field)) / 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Served:
    """``tf-qa serve`` on free loopback ports (gRPC, and REST with ``rest=True``), started and stopped here."""

    def __init__(
        self,
        repository: str | os.PathLike,
        *,
        rest: bool = False,
        extra_args: tuple[str, ...] = (),
        model_name: str = MODEL_NAME,
        cpus: set[int] | None = None,
    ):
        self.cpus = cpus  # the cores the server (every thread it starts) may run on; None: all
        self.repository = str(repository)
        self.model_name = model_name
        self.port = free_port()
        self.rest_port = free_port() if rest else None
        self.extra_args = extra_args
        self.process: subprocess.Popen | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Served:
        rest = ["--rest-api-port", str(self.rest_port)] if self.rest_port else []
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tf_qa.cli",
                "serve",
                "--model-base-path",
                self.repository,
                "--model-name",
                self.model_name,
                "--port",
                str(self.port),
                *rest,
                *self.extra_args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, self.cpus)) if self.cpus else None,
        )
        line = self.process.stdout.readline()
        if not line.startswith("serving "):
            raise RuntimeError(f"tf-qa serve did not start: {line!r}")
        return self

    def kill(self) -> None:
        """``kill -9``: no clean shutdown."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def rss_mb(self) -> float:
        return status_mb(self.process.pid, "VmRSS:")

    def peak_rss_mb(self) -> float:
        return status_mb(self.process.pid, "VmHWM:")

    def reset_peak(self) -> None:
        """Sets the peak RSS (VmHWM) back to the current RSS (Linux ``clear_refs``)."""
        with open(f"/proc/{self.process.pid}/clear_refs", "w") as clear:
            clear.write("5")
        time.sleep(0.05)

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def cpu_name() -> str:
    """The CPU's name and its flags that decide the model's kernels, for every printed figure."""
    from tf_qa.cpu import cpu_features

    return cpu_features().describe()
