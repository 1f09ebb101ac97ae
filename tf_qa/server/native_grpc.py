"""``NativeGrpcServer``: TF Serving's Predict over gRPC from a C++ front end, the model in the same process.

What a client of stock ``tensorflow_model_server`` meets, as near as this machine can build it: one process that
serves gRPC from C++ (``native_grpc.cc``, on Debian's gRPC) and runs the SavedModel in TensorFlow's C++ runtime
(``tf_qa/saved_model/native_session.cc``, as the native runner does). It answers ``PredictionService/Predict``
only, one request at a time; ``tf-qa serve`` remains the server with everything
else (model config, versions, batching, admission, metrics, REST, health). Built on first use and cached like
the runner; NativeUnavailable names the Debian packages it needs (``scripts/setup-debian.sh`` installs them).

Example:

>>> from tf_qa.client import QAClient
>>> with NativeGrpcServer("export/qa/1", "qa") as server:                                      # doctest: +SKIP
...     QAClient(server.target, "qa").answer("What is the capital of France?", "Paris is ...")
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
from pathlib import Path

from tf_qa.saved_model.native import (
    SESSION_SOURCE,
    NativeError,
    NativeUnavailable,
    cached_binary,
    cxx_compiler,
    log_tail,
    run_build_step,
    runner_environment,
    session_arguments,
    session_key_parts,
    stop_process,
    tensorflow_flags,
)

SOURCE = Path(__file__).with_name("native_grpc.cc")
PACKAGES = "libgrpc++-dev pkg-config (Debian; scripts/setup-debian.sh)"


def grpc_flags() -> list[str]:
    """Debian's gRPC's compiler and linker flags; NativeUnavailable when its build kit is missing."""
    if shutil.which("pkg-config") is None:
        raise NativeUnavailable(f"building on Debian's gRPC needs {PACKAGES}; missing: pkg-config")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "grpc++"], capture_output=True, text=True)
    if flags.returncode != 0:
        missing = [line for line in flags.stderr.splitlines() if "not found" in line][:1] or ["pkg-config's grpc++"]
        raise NativeUnavailable(f"building on Debian's gRPC needs {PACKAGES}; missing: {', '.join(missing)}")
    return flags.stdout.split()


def front_end_binary() -> Path:
    """The built front end, compiled on first use and cached; NativeUnavailable says why it cannot be."""
    compiler, version = cxx_compiler()
    flags = grpc_flags()
    tf_compile, tf_link = tensorflow_flags()
    key_parts = [SOURCE.read_bytes(), *session_key_parts(), " ".join(flags + tf_compile + tf_link).encode()]

    def build(folder: Path, output: str) -> None:
        # Two units, each against its own headers: the session against the TensorFlow wheel's (its protobuf and
        # Abseil), the gRPC code against Debian's.
        session = str(folder / "native_session.o")
        run_build_step([compiler, "-O2", "-c", str(SESSION_SOURCE), "-o", session, *tf_compile], "the native session")
        run_build_step(
            [compiler, "-O2", "-std=c++17", f"-I{SESSION_SOURCE.parent}", str(SOURCE), session, "-o", output,
             *flags, *tf_link],
            "the C++ gRPC front end",
        )  # fmt: skip

    return cached_binary("native_grpc", [*key_parts, version.encode()], build)


class NativeGrpcServer:
    """``version_dir`` served as ``model_name`` (its version: the folder's name) on a free port of 127.0.0.1.

    ``session_config``: the ConfigProto to load with (default: the platform config's). ``target`` is the
    address for a gRPC channel. NativeError (FAILED_PRECONDITION) when the model does not load within
    ``start_timeout`` seconds, with what the runner said.
    """

    def __init__(self, version_dir: str | os.PathLike, model_name: str, session_config=None, *,
                 start_timeout: float = 600.0):  # fmt: skip
        version = Path(version_dir).name
        if not version.isdigit():
            raise ValueError(f"{version_dir} is not a version folder (its name must be the version number)")
        binary = front_end_binary()
        self._workdir = tempfile.TemporaryDirectory(prefix="tf-qa-native-grpc-")
        workdir = Path(self._workdir.name)
        self._log = open(workdir / "server.log", "w+b")
        self._process = subprocess.Popen(
            [str(binary), "0", model_name, version, *session_arguments(version_dir, session_config, workdir)],
            stdout=subprocess.PIPE, stderr=self._log, env=runner_environment(), text=True,
        )  # fmt: skip
        self.target = f"127.0.0.1:{self._port(start_timeout)}"

    def _port(self, timeout: float) -> int:
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        line = self._process.stdout.readline() if ready else ""
        if not line.startswith("serving "):
            if not ready:  # still loading after ``timeout``
                self._process.kill()
            self.close()
            raise NativeError("FAILED_PRECONDITION", f"the C++ gRPC front end did not start: {self._tail}")
        return int(line.split()[1])

    def close(self) -> None:
        """Stops the front end."""
        if self._log.closed:
            return
        stop_process(self._process, terminate=True)
        self._tail = log_tail(self._log)
        self._process.stdout.close()
        self._log.close()
        self._workdir.cleanup()

    def __enter__(self) -> NativeGrpcServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":  # builds it (scripts/setup-debian.sh does, beside the suite)
    try:
        print(front_end_binary())
    except NativeUnavailable as error:
        raise SystemExit(f"the C++ gRPC front end cannot be built here: {error}") from None
