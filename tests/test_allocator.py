"""TCMalloc is preloaded into the processes that run the model (tf_qa/saved_model/allocator.py), unless the user
set LD_PRELOAD; the deployment kit's image does the same (tests/test_serving_kit.py)."""

from __future__ import annotations

import ctypes.util
import os
import signal
import subprocess
import sys

import pytest
from conftest import debian_setup_log

from tf_qa.saved_model import allocator
from tf_qa.saved_model.allocator import TCMALLOC, allocator_mapped, allocator_of, preload_environment
from tf_qa.saved_model.native import NativeSession


@pytest.fixture(scope="module")
def tcmalloc():
    """Waits for scripts/setup-debian.sh (it installs TCMalloc beside the suite); skips where it is not installed."""
    log = debian_setup_log()
    allocator.library_installed.cache_clear()
    if not allocator.tcmalloc_installed():
        pytest.skip(f"{TCMALLOC} is not installed (scripts/setup-debian.sh: {log})")


@pytest.mark.parametrize(
    "environ,installed,expected",
    [
        ({"PATH": "/bin"}, True, TCMALLOC),
        ({"PATH": "/bin"}, False, None),
        ({"LD_PRELOAD": ""}, True, ""),
        ({"LD_PRELOAD": "libjemalloc.so.2"}, True, "libjemalloc.so.2"),
    ],
)
def test_preload_only_where_installed_and_not_chosen(monkeypatch, environ, installed, expected):
    monkeypatch.setattr(allocator, "tcmalloc_installed", lambda: installed)
    env = preload_environment(environ)
    assert env.get("LD_PRELOAD") == expected
    others = lambda mapping: {k: v for k, v in mapping.items() if k != "LD_PRELOAD"}  # noqa: E731
    assert others(env) == others(environ)


@pytest.mark.parametrize(
    "library,named",
    [
        ("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4.5.10", "TCMalloc"),
        ("/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4.5.10", "TCMalloc"),  # the full build, profilers and all
        ("/usr/lib/aarch64-linux-gnu/libjemalloc.so.2", "jemalloc"),
        ("/usr/local/lib/libmimalloc.so.2.1", "mimalloc"),
        ("/usr/lib/x86_64-linux-gnu/libc.so.6", "glibc malloc"),
    ],
)
def test_the_allocator_a_memory_map_names(library, named):
    maps = f"7f2e5c000000-7f2e5c022000 r--p 00000000 08:01 1234 {library}\n"
    assert allocator_mapped(maps) == named


@pytest.mark.parametrize(
    "library,name",
    [("libjemalloc.so.2", "jemalloc"), ("libtcmalloc_minimal.so.4", "tcmalloc_minimal"), ("libc.so.6", "c")],
)
@pytest.mark.parametrize("found", [True, False])
def test_a_library_is_looked_up_by_the_name_find_library_takes(monkeypatch, library, name, found):
    asked = []
    monkeypatch.setattr(ctypes.util, "find_library", lambda n: asked.append(n) or (library if found else None))
    allocator.library_installed.cache_clear()
    try:
        assert allocator.library_installed(library) is found and asked == [name]
    finally:
        allocator.library_installed.cache_clear()


def _child_allocator(env: dict) -> str:
    code = "from tf_qa.saved_model.allocator import allocator_of; print(allocator_of())"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("chosen,expected", [(None, "TCMalloc"), ("", "glibc malloc")])
def test_a_process_started_with_the_environment_runs_on_it(tcmalloc, chosen, expected):
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if chosen is not None:
        env["LD_PRELOAD"] = chosen
    assert _child_allocator(preload_environment(env)).strip() == expected


def test_the_native_runner_runs_on_tcmalloc(tcmalloc, saved_model_dir, monkeypatch):
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    with NativeSession(saved_model_dir) as session:
        assert allocator_of(session.pid) == "TCMalloc"


def test_tf_qa_serve_starts_again_on_tcmalloc(tcmalloc, tiny_repository, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "tf_qa.cli", "serve", "--model-base-path", str(tiny_repository)]
    command += ["--model-name", "tiny", "--port", "0"]
    with open(log, "w") as stderr:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        assert process.stdout.readline().startswith("serving tiny"), log.read_text()[-500:]
        assert allocator_of(process.pid) == "TCMalloc"  # the same process: started again in place (execve)
        assert "memory allocator: TCMalloc" in log.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
