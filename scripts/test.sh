#!/usr/bin/env bash
# Sets up .venv, lints and checks the formatting (ruff, configured in pyproject.toml) and runs the whole test suite (pytest's exit code,
# 5 = no tests, fails the run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
export TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m pytest -ra "$@"
