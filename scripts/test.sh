#!/usr/bin/env bash
# Sets up .venv and runs the whole test suite (pytest's exit code, 5 = no tests, fails the run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m pytest -ra "$@"
