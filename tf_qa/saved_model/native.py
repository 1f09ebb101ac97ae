"""The native runtime: a SavedModel run by TensorFlow's C++ runtime as tensorflow_model_server runs it, no Python.

``native_runner.cc`` (with ``native_session.cc``) is built on first use with the machine's C++ compiler (``$CXX``,
else ``g++``) against the installed TensorFlow's headers and ``libtensorflow_cc`` (``tf.sysconfig``'s flags), and
cached under ``$XDG_CACHE_HOME/tf-qa/native/`` by a hash of the sources, the flags and the compiler. The runner
registers TF Text's op libraries with ``TF_LoadLibrary``, loads the version folder with ``LoadSavedModel`` (tag
``serve``, the platform config's session options) and answers requests on its stdin, one process per loaded
model.

Example:

>>> with NativeSession("export/distilbert-squad/1") as native:                                 # doctest: +SKIP
...     outputs, seconds = native.run("serving_default", {"question": q, "context": c})
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import select
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from grpc import StatusCode

from tf_qa.errors import SetupError, TFQAError
from tf_qa.protos import TensorProto
from tf_qa.saved_model.allocator import preload_environment
from tf_qa.tensors import make_ndarray, make_tensor_proto

SOURCE = Path(__file__).with_name("native_runner.cc")
# The model in TensorFlow's C++ runtime, which the C++ gRPC front end (tf_qa/server/native_grpc.py) links in too.
SESSION_SOURCE = Path(__file__).with_name("native_session.cc")
FRAMES = Path(__file__).with_name("native_frames.h")  # what the runner speaks on its pipes
SESSION_HEADERS = [Path(__file__).with_name("native_session.h"), FRAMES]
_BUILD_SECONDS = 600


class NativeUnavailable(SetupError):
    """The native runtime cannot run on this machine (no compiler, or the build failed); says why."""


class NativeError(TFQAError):
    """The native runtime refused a request or a model, with TensorFlow's status code (``code_name``, as the
    runner reports it) and its message."""

    def __init__(self, code_name: str, message: str):
        code = StatusCode[code_name] if code_name in StatusCode.__members__ else StatusCode.UNKNOWN
        super().__init__(f"{code_name}: {message}", code=code)
        self.message = message


def tf_text_op_libraries() -> list[str]:
    """TF Text's op libraries: the shared objects tensorflow_model_server links in."""
    import tensorflow_text

    return sorted(glob.glob(os.path.join(os.path.dirname(tensorflow_text.__file__), "python", "*", "_*.so")))


def tensorflow_flags() -> tuple[list[str], list[str]]:
    """The compiler's and the linker's flags for code on the installed TensorFlow's C++ runtime."""
    import tensorflow as tf

    link_flags = tf.sysconfig.get_link_flags()
    library_dir = next(flag[2:] for flag in link_flags if flag.startswith("-L"))
    return tf.sysconfig.get_compile_flags(), [*link_flags, "-l:libtensorflow_cc.so.2", f"-Wl,-rpath,{library_dir}"]


def session_key_parts() -> list[bytes]:
    """What a binary that links ``native_session.cc`` is cached by, besides its own source and commands."""
    return [path.read_bytes() for path in (SESSION_SOURCE, *SESSION_HEADERS)]


def _build_command(compiler: str, output: str) -> list[str]:
    compile_flags, link_flags = tensorflow_flags()
    return [compiler, "-O2", str(SOURCE), str(SESSION_SOURCE), "-o", output, *compile_flags, *link_flags]


def cxx_compiler() -> tuple[str, str]:
    """The C++ compiler (``$CXX``, else ``g++``) and its ``--version``; NativeUnavailable when there is none."""
    compiler = shutil.which(os.environ.get("CXX", "g++"))
    if compiler is None:
        raise NativeUnavailable(f"no C++ compiler ({os.environ.get('CXX', 'g++')}) on PATH; install g++ or set CXX")
    return compiler, subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout


def cached_binary(name: str, key_parts: list[bytes], build: Callable[[Path, str], None]) -> Path:
    """``name`` as ``build(folder, output)`` makes it, once per ``key_parts`` (sources, commands, compiler), cached
    under ``$XDG_CACHE_HOME/tf-qa/native/``; one build when several processes ask at once."""
    key = hashlib.sha256(b"\0".join(key_parts)).hexdigest()[:16]
    folder = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tf-qa" / "native" / key
    binary = folder / name
    if binary.exists():
        return binary
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{name}.", delete=False) as file:
                partial = file.name
            try:
                build(folder, partial)
            except BaseException:
                os.unlink(partial)
                raise
            os.replace(partial, binary)
    return binary


def run_build_step(command: list[str], what: str) -> None:
    """One build command; NativeUnavailable with the last lines of its errors when it fails or takes too long."""
    try:
        built = subprocess.run(command, capture_output=True, text=True, timeout=_BUILD_SECONDS)
    except subprocess.TimeoutExpired:
        raise NativeUnavailable(f"building {what} took over {_BUILD_SECONDS} s") from None
    if built.returncode != 0:
        tail = " | ".join(built.stderr.strip().splitlines()[-3:])
        raise NativeUnavailable(f"building {what} failed ({Path(command[0]).name}): {tail}")


def runner_binary() -> Path:
    """The built runner, compiled on first use and cached; NativeUnavailable says why it cannot be."""
    compiler, version = cxx_compiler()
    command = " ".join(_build_command(compiler, "")).encode()
    return cached_binary(
        "native_runner",
        [SOURCE.read_bytes(), *session_key_parts(), command, version.encode()],
        lambda folder, output: run_build_step(_build_command(compiler, output), "the native runner"),
    )


def session_arguments(version_dir: str | os.PathLike, session_config, workdir: Path) -> list[str]:
    """``VERSION_DIR SESSION_CONFIG_FILE OP_LIBRARY...``, what ``NativeSession::Load`` takes on a command line: its
    session options (None: the platform config's) written into ``workdir``."""
    if session_config is None:
        from tf_qa.saved_model.platform_config import read_platform_config

        session_config = read_platform_config().session_config
    config_file = workdir / "session_config.binpb"
    config_file.write_bytes(session_config.SerializeToString())
    return [str(version_dir), str(config_file), *tf_text_op_libraries()]


def runner_command(version_dir: str | os.PathLike, session_config, workdir: Path) -> list[str]:
    """The runner's command line for ``version_dir`` (``session_arguments``)."""
    return [str(runner_binary()), *session_arguments(version_dir, session_config, workdir)]


def runner_environment() -> dict[str, str]:
    """The runner's environment: TensorFlow's informational log lines off unless the caller chose a level, and
    TCMalloc preloaded (``tf_qa.saved_model.allocator``)."""
    return preload_environment({"TF_CPP_MIN_LOG_LEVEL": "2", **os.environ})


def encode_frame(items: list[bytes]) -> bytes:
    """``items`` as one frame of ``native_frames.h``: a uint32 count, then each item's uint32 length and bytes."""
    return b"".join([struct.pack("<I", len(items)), *(struct.pack("<I", len(item)) + item for item in items)])


def decode_frame(read_exactly: Callable[[int], bytes]) -> list[bytes]:
    """One frame of ``native_frames.h``, read with ``read_exactly(size)``."""
    count = struct.unpack("<I", read_exactly(4))[0]
    return [read_exactly(struct.unpack("<I", read_exactly(4))[0]) for _ in range(count)]


def stop_process(process: subprocess.Popen, *, terminate: bool) -> None:
    """Waits up to 30 s for ``process`` to end (after SIGTERM when ``terminate``), then kills it."""
    if process.poll() is None:
        if terminate:
            process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def log_tail(log) -> str:
    """The last three lines of a binary log file, on one line (what a process said before it stopped)."""
    log.seek(0)
    lines = log.read().decode(errors="replace").strip().splitlines()
    return " | ".join(lines[-3:]) or "no output"


class NativeSession:
    """One SavedModel version loaded in the native runner (a child process); ``run`` answers a request.

    ``session_config`` is the ConfigProto to load with (default: the platform config's). ``load_seconds`` is
    the runner's own time to register the op libraries and load the model; ``pid`` is its process id.
    ``timeout``: seconds the load, and then each request, may take before the runner is stopped and NativeError
    raised (DEADLINE_EXCEEDED).
    """

    def __init__(self, version_dir: str | os.PathLike, session_config=None, *, timeout: float = 600.0):
        self.timeout = timeout
        self._workdir = tempfile.TemporaryDirectory(prefix="tf-qa-native-")
        self._log = open(Path(self._workdir.name) / "runner.log", "w+b")
        self._process = subprocess.Popen(
            runner_command(version_dir, session_config, Path(self._workdir.name)),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=runner_environment(), bufsize=0,
        )  # fmt: skip
        loaded = self._read_frame()
        if loaded[0] != b"loaded":
            self.close()
            raise NativeError(loaded[1].decode(), loaded[2].decode(errors="replace"))
        self.load_seconds = int(loaded[1]) / 1e6
        self.pid = self._process.pid

    def run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], float]:
        """Runs a signature; returns its outputs by key and Session::Run's own seconds."""
        protos = {key: make_tensor_proto(value) for key, value in inputs.items()}
        return self.run_tensor_protos(signature_name, protos)

    def run_tensor_protos(self, signature_name: str, inputs: dict) -> tuple[dict[str, np.ndarray], float]:
        """As ``run``, with the inputs as TensorProtos (a PredictRequest's ``inputs``)."""
        items = [signature_name.encode()]
        for key, proto in inputs.items():
            items += [key.encode(), proto.SerializeToString()]
        self._write_frame(items)
        response = self._read_frame()
        if response[0] != b"ok":
            raise NativeError(response[1].decode(), response[2].decode(errors="replace"))
        outputs = {
            response[i].decode(): make_ndarray(TensorProto.FromString(response[i + 1]))
            for i in range(2, len(response), 2)
        }
        return outputs, int(response[1]) / 1e6

    def _write_frame(self, items: list[bytes]) -> None:
        try:
            self._process.stdin.write(encode_frame(items))
            self._process.stdin.flush()
        except (BrokenPipeError, ValueError):  # the runner has stopped (or was stopped); its log says why
            raise NativeError("INTERNAL", f"the native runner is not running: {log_tail(self._log)}") from None

    def _read_frame(self) -> list[bytes]:
        deadline = time.monotonic() + self.timeout
        return decode_frame(lambda size: self._read_exactly(size, deadline))

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        """``size`` bytes from the runner; NativeError when it stops or passes ``deadline`` (it is then killed)."""
        chunks, missing = [], size
        while missing:
            ready, _, _ = select.select([self._process.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                self._process.kill()
                raise NativeError("DEADLINE_EXCEEDED", f"the native runner took over {self.timeout:g} s; stopped it")
            chunk = self._process.stdout.read(missing)
            if not chunk:
                raise NativeError(
                    "INTERNAL", f"the native runner stopped (exit {self._process.wait()}): {log_tail(self._log)}"
                )
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        if not self._process.stdin.closed:
            try:
                self._process.stdin.close()
            except BrokenPipeError:
                pass
        stop_process(self._process, terminate=False)  # the runner exits at the end of its input
        self._process.stdout.close()
        self._log.close()
        self._workdir.cleanup()

    def __enter__(self) -> NativeSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    print(runner_binary())  # builds it (scripts/test.sh does, while other work runs)
