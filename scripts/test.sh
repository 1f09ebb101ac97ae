#!/usr/bin/env bash
# Sets up .venv, lints and checks the formatting (ruff, configured in pyproject.toml) and runs the whole test
# suite, a worker per core, each test file in one worker (tests/conftest.py groups them) so it builds its
# fixtures once (pytest's exit code, 5 = no tests, fails the run; extra arguments go to pytest, e.g. -n 0
# for one process).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
export TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m pytest -ra -n auto --dist loadgroup "$@"
