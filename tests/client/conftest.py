"""The client suite: runs with the client-only install (no TensorFlow), against ``tf-qa serve`` processes.

The servers run on ``TF_QA_SERVER_PYTHON`` (a Python with the full install; by default this one) and serve
``TF_QA_CLIENT_REPOSITORY`` (an export of model ``tiny-qa``; by default the suite's own, which needs the full
install). ``scripts/test-client.sh`` runs it from a client-only virtual environment.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from servers import serve


@pytest.fixture(scope="session")
def client_repository(request) -> Path:
    path = os.environ.get("TF_QA_CLIENT_REPOSITORY")
    return Path(path) if path else request.getfixturevalue("tiny_repository")


@pytest.fixture(scope="session")
def served(client_repository):
    """One plain server (gRPC and REST) for the tests that only ask."""
    with serve(client_repository, "--rest-api-port", "0") as ports:
        yield ports
