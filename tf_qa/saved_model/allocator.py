"""The memory allocator TensorFlow's runtime runs on: TCMalloc, preloaded where the machine has it.

TensorFlow allocates and frees every op's outputs and scratch buffers, hundreds a question, and glibc's malloc
takes a share of a question's time on them that TCMalloc does not (measured in benchmarks/README.md). A process
picks its allocator when it starts, so it is preloaded (``LD_PRELOAD``) into the processes that run the model: the
native runner and the C++ gRPC front end, ``tf-qa serve``, and tensorflow_model_server in the deployment kit's
image (serving/Dockerfile). An ``LD_PRELOAD`` that is already set, even to nothing, is the user's choice and is
left as it is: ``LD_PRELOAD= tf-qa serve ...`` runs on glibc's malloc.

Example:

>>> env = preload_environment({"PATH": "/usr/bin"})
>>> env.get("LD_PRELOAD") in (None, TCMALLOC)
True
>>> preload_environment({"LD_PRELOAD": ""})["LD_PRELOAD"]
''
"""

from __future__ import annotations

import ctypes.util
import functools
import os
from collections.abc import Mapping
from pathlib import Path

#: gperftools' TCMalloc without the profilers (Debian and Ubuntu: libtcmalloc-minimal4), by the name the dynamic
#: loader finds it under on any architecture.
TCMALLOC = "libtcmalloc_minimal.so.4"
TCMALLOC_PACKAGE = "libtcmalloc-minimal4"


@functools.cache
def library_installed(library: str) -> bool:
    """Whether the dynamic loader finds ``library``, a soname such as ``libjemalloc.so.2`` (ldconfig's cache)."""
    return ctypes.util.find_library(library.removeprefix("lib").split(".so")[0]) == library


def tcmalloc_installed() -> bool:
    return library_installed(TCMALLOC)


def preload_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with ``TCMALLOC`` preloaded, unless ``LD_PRELOAD`` is set already or TCMalloc is not installed."""
    env = dict(environ)
    if "LD_PRELOAD" not in env and tcmalloc_installed():
        env["LD_PRELOAD"] = TCMALLOC
    return env


#: What a process's memory map names, by the allocator it means.
_MAPPED_ALLOCATORS = {"libtcmalloc": "TCMalloc", "libjemalloc": "jemalloc", "libmimalloc": "mimalloc"}


def allocator_of(pid: int | str = "self") -> str:
    """The allocator process ``pid`` runs on (``allocator_mapped`` in its /proc maps); "unknown" where they
    cannot be read."""
    try:
        return allocator_mapped(Path(f"/proc/{pid}/maps").read_text())
    except OSError:
        return "unknown"


def allocator_mapped(maps: str) -> str:
    """The allocator a process's memory map (/proc/PID/maps) names: "TCMalloc", "jemalloc", "mimalloc", else
    "glibc malloc"."""
    return next((name for library, name in _MAPPED_ALLOCATORS.items() if library in maps), "glibc malloc")


def describe(pid: int | str = "self") -> str:
    """One line for a log: the allocator of ``pid`` and, on glibc's malloc, why and what to install."""
    allocator = allocator_of(pid)
    if allocator != "glibc malloc":
        return allocator
    if "LD_PRELOAD" in os.environ:
        return f"{allocator} (LD_PRELOAD is set: left as chosen)"
    if not tcmalloc_installed():
        return f"{allocator} ({TCMALLOC} not found: apt-get install {TCMALLOC_PACKAGE} runs TensorFlow faster)"
    return allocator
