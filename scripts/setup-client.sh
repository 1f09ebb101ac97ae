#!/usr/bin/env bash
# Creates a client-only virtual environment at DIR (no TensorFlow: grpcio, protobuf and numpy) with tf-qa from
# this checkout: tf_qa.client, tf-qa ask and tf-qa evaluate --target.
#   bash scripts/setup-client.sh DIR [EXTRA_PACKAGE ...]   # e.g. pytest, for the client test suite
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: bash scripts/setup-client.sh DIR [EXTRA_PACKAGE ...]" >&2
  exit 2
fi
DIR=$1
shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
if [ ! -x "$DIR/bin/python" ]; then
  "$PYTHON" -m venv "$DIR"
fi
# With uv, as scripts/setup.sh installs.
"$DIR/bin/python" -m pip install --quiet uv
"$DIR/bin/uv" pip install --quiet --compile-bytecode --python "$DIR/bin/python" -e "$ROOT" "$@"
