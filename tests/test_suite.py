"""The suite's own machinery: under scripts/test.sh each test file runs in one pytest-xdist worker."""

from __future__ import annotations

import os

import pytest


def test_each_file_runs_in_one_xdist_worker(request):
    # pytest 9.2 broke --dist loadgroup silently (pytest-dev/pytest-xdist#1386): files were split over workers and
    # built their fixtures twice. pyproject.toml pins pytest below 9.2; this fails if grouping breaks again.
    if not os.environ.get("PYTEST_XDIST_WORKER") or not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not run by pytest-xdist with --dist loadgroup (scripts/test.sh)")
    assert request.node.nodeid.endswith("@test_suite.py"), request.node.nodeid
