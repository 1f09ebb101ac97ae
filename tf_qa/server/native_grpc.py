"""``NativeGrpcServer``: TF Serving's Predict over gRPC from a C++ front end, the model in the native runner.

What a client of stock ``tensorflow_model_server`` meets, as near as this machine can build it: gRPC served by C++
(``native_grpc.cc``, on Debian's gRPC and protobuf, its messages compiled from ``tf_qa/protos``), the SavedModel
run by TensorFlow's C++ runtime (``tf_qa/saved_model/native_runner.cc``, a child process on pipes). It answers
``PredictionService/Predict`` only, one request at a time; ``tf-qa serve`` remains the server with everything
else (model config, versions, batching, admission, metrics, REST, health). Built on first use and cached like
the runner; NativeUnavailable names the Debian packages it needs (``scripts/setup-debian.sh`` installs them).

Example:

>>> from tf_qa.client import QAClient
>>> with NativeGrpcServer("export/qa/1", "qa") as server:                                      # doctest: +SKIP
...     QAClient(server.target, "qa").answer("What is the capital of France?", "Paris is ...")
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import tempfile
from pathlib import Path

from tf_qa.protos import PROTO_ROOT
from tf_qa.saved_model.native import (
    FRAMES,
    NativeError,
    NativeUnavailable,
    cached_binary,
    cxx_compiler,
    log_tail,
    run_build_step,
    runner_command,
    runner_environment,
    stop_process,
)

SOURCE = Path(__file__).with_name("native_grpc.cc")
PACKAGES = "libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc (Debian; scripts/setup-debian.sh)"


SERVICE_PROTO = "tensorflow_serving/apis/prediction_service.proto"


def _proto_files() -> list[str]:
    """``SERVICE_PROTO`` and the files of ``tf_qa/protos`` it imports, directly or not (protobuf's own come with
    Debian's protobuf)."""
    files, pending = set(), [SERVICE_PROTO]
    while pending:
        name = pending.pop()
        if name not in files and (PROTO_ROOT / name).exists():
            files.add(name)
            pending += re.findall(r'^import "([^"]+)";', (PROTO_ROOT / name).read_text(), re.MULTILINE)
    return sorted(files)


def _toolchain() -> tuple[str, str, list[str]]:
    """protoc, gRPC's C++ plugin and the compiler flags of gRPC and protobuf; NativeUnavailable when missing."""
    protoc, plugin = shutil.which("protoc"), shutil.which("grpc_cpp_plugin")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "grpc++", "protobuf"], capture_output=True, text=True)
    if not (protoc and plugin and flags.returncode == 0):
        missing = [name for name, found in (("protoc", protoc), ("grpc_cpp_plugin", plugin)) if not found]
        missing += [line for line in flags.stderr.splitlines() if "not found" in line][:1]
        raise NativeUnavailable(f"the C++ gRPC front end needs {PACKAGES}; missing: {', '.join(missing)}")
    return protoc, plugin, flags.stdout.split()


def front_end_binary() -> Path:
    """The built front end, compiled on first use and cached; NativeUnavailable says why it cannot be."""
    compiler, version = cxx_compiler()
    protoc, plugin, flags = _toolchain()
    protoc_version = subprocess.run([protoc, "--version"], capture_output=True, text=True).stdout
    proto_files = _proto_files()
    protos = [(PROTO_ROOT / name).read_bytes() for name in proto_files]
    key_parts = [SOURCE.read_bytes(), FRAMES.read_bytes(), *protos, " ".join(flags).encode()]
    key_parts += [version.encode(), protoc_version.encode()]

    def build(folder: Path, output: str) -> None:
        generated = folder / "generated"
        generated.mkdir(exist_ok=True)
        run_build_step(
            [protoc, f"-I{PROTO_ROOT}", f"--cpp_out={generated}", f"--grpc_out={generated}",
             f"--plugin=protoc-gen-grpc={plugin}", *proto_files],
            "the front end's messages",
        )  # fmt: skip
        sources = sorted(str(p) for p in generated.rglob("*.pb.cc") if not p.name.endswith(".grpc.pb.cc"))
        services = [str(generated / SERVICE_PROTO.replace(".proto", ".grpc.pb.cc"))]
        run_build_step(
            [compiler, "-O2", "-std=c++17", f"-I{generated}", f"-I{FRAMES.parent}", str(SOURCE), *services,
             *sources, "-o", output, *flags],
            "the C++ gRPC front end",
        )  # fmt: skip

    return cached_binary("native_grpc", key_parts, build)


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
            [str(binary), "0", model_name, version, *runner_command(version_dir, session_config, workdir)],
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
        """Stops the front end (its runner then reads the end of its input and exits)."""
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
