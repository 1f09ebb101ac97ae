#!/usr/bin/env bash
# The client suite (tests/client) from a client-only virtual environment (no TensorFlow; made by
# scripts/setup-client.sh) against tf-qa serve processes of the full one (.venv, made by scripts/setup.sh).
#   bash scripts/test-client.sh [--prepared] [PYTEST_ARGUMENT ...]
# --prepared: the client environment and the Node.js client's packages are already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENT_VENV=${TF_QA_CLIENT_VENV:-.venv-client}
if [ "${1:-}" != "--prepared" ]; then
  bash scripts/setup-client.sh "$CLIENT_VENV" pytest
  # The Node.js client's packages, for its test (which fails in CI without them).
  if command -v npm > /dev/null; then
    npm ci --prefix clients/node --no-audit --no-fund --loglevel=error > /dev/null
  fi
else
  shift
fi
if "$CLIENT_VENV/bin/python" -c "import tensorflow" 2> /dev/null; then
  echo "tensorflow is importable in $CLIENT_VENV: not a client-only environment" >&2
  exit 1
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# The model the servers serve, exported by the full install unless given (scripts/test.sh passes the main suite's
# small random-weights one: the client suite checks the calls, the parity suites the answers).
if [ ! -d "${TF_QA_CLIENT_REPOSITORY:-}" ]; then
  TF_QA_CLIENT_REPOSITORY="$WORK/tiny-qa"
  .venv/bin/tf-qa export --demo --output "$TF_QA_CLIENT_REPOSITORY" > "$WORK/export.log" 2>&1 \
    || { cat "$WORK/export.log"; exit 1; }
fi
export TF_QA_SERVER_PYTHON="$PWD/.venv/bin/python" TF_QA_CLIENT_REPOSITORY
"$CLIENT_VENV/bin/python" -m pytest -p no:cacheprovider -ra tests/client "$@"
