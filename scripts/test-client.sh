#!/usr/bin/env bash
# The client suite (tests/client) from a client-only virtual environment (no TensorFlow; made by
# scripts/setup-client.sh) against tf-qa serve processes of the full one (.venv, made by scripts/setup.sh).
#   bash scripts/test-client.sh [PYTEST_ARGUMENT ...]
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENT_VENV=${TF_QA_CLIENT_VENV:-.venv-client}
bash scripts/setup-client.sh "$CLIENT_VENV" pytest
if "$CLIENT_VENV/bin/python" -c "import tensorflow" 2> /dev/null; then
  echo "tensorflow is importable in $CLIENT_VENV: not a client-only environment" >&2
  exit 1
fi
# The Node.js client's packages, for its test (which fails in CI without them).
if command -v npm > /dev/null; then
  npm ci --prefix clients/node --no-audit --no-fund --loglevel=error > /dev/null
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# The model the servers serve: exported by the full install (random weights: the client suite checks the calls,
# the parity suites check the answers).
.venv/bin/tf-qa export --demo --output "$WORK/tiny-qa" > "$WORK/export.log" 2>&1 || { cat "$WORK/export.log"; exit 1; }
export TF_QA_SERVER_PYTHON="$PWD/.venv/bin/python" TF_QA_CLIENT_REPOSITORY="$WORK/tiny-qa"
"$CLIENT_VENV/bin/python" -m pytest -p no:cacheprovider -ra tests/client "$@"
