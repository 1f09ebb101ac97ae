#!/usr/bin/env bash
# Sets up .venv, lints and checks the formatting (ruff, configured in pyproject.toml), runs the test suite, a
# worker per core, each test file in one worker (tests/conftest.py groups them) so it builds its
# fixtures once (pytest's exit code, 5 = no tests, fails the run; extra arguments go to pytest, e.g. -n 0
# for one process), then the client suite from a client-only environment (scripts/test-client.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
export TF_CPP_MIN_LOG_LEVEL=2
started=$SECONDS
.venv/bin/python -m pytest -ra -n auto --dist loadgroup --ignore=tests/client "$@"
echo "main suite: $((SECONDS - started)) s"
# The client suite runs from a client-only environment (no TensorFlow), against servers of this one.
started=$SECONDS
bash scripts/test-client.sh
echo "client suite: $((SECONDS - started)) s"
