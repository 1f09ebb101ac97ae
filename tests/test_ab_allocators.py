"""``benchmarks/ab_allocators.py`` starts each side with its allocator preloaded and leaves the environment as it
found it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from ab_allocators import ALLOCATORS, preloaded


@pytest.mark.parametrize("before", [None, "", "libfoo.so"])
def test_preloaded_sets_the_library_and_restores_what_was_there(monkeypatch, before):
    if before is None:
        monkeypatch.delenv("LD_PRELOAD", raising=False)
    else:
        monkeypatch.setenv("LD_PRELOAD", before)
    with preloaded(ALLOCATORS["TCMalloc"]):
        assert os.environ["LD_PRELOAD"] == "libtcmalloc_minimal.so.4"
    assert os.environ.get("LD_PRELOAD") == before
