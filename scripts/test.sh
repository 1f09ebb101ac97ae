#!/usr/bin/env bash
# Sets up .venv, lints and checks the formatting (ruff, configured in pyproject.toml), runs the test suite, a
# worker per core, each test file in one worker (tests/conftest.py groups them) so it builds its
# fixtures once (pytest's exit code, 5 = no tests, fails the run; extra arguments go to pytest, e.g. -n 0
# for one process), and beside it the client suite from a client-only environment (scripts/test-client.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Meanwhile: the native runner is built (tf_qa/saved_model/native.py; cached), and the client suite's
# environment (no TensorFlow) and the Node.js client's packages are installed; so are Debian's Prometheus and gRPC
# build kit, and the C++ gRPC front end is built, which the tests that use them wait for (the marker file).
SHARED=$(mktemp -d)
trap 'rm -rf "$SHARED"' EXIT
(bash scripts/setup-debian.sh > "$SHARED/debian-setup.log" 2>&1 || true; touch "$SHARED/debian-setup.done") &
# The client suite (from the client-only environment, against servers of this one serving the main suite's
# export) then runs beside the main suite as soon as that export is made: it mostly waits on its servers.
(
  {
    .venv/bin/python -m tf_qa.saved_model.native
    bash scripts/setup-client.sh "${TF_QA_CLIENT_VENV:-.venv-client}" pytest
    if command -v npm > /dev/null; then npm ci --prefix clients/node --no-audit --no-fund --loglevel=error; fi
  } > "$SHARED/client-setup.log" 2>&1 || { echo "client setup failed:"; cat "$SHARED/client-setup.log"; exit 1; }
  until [ -e "$SHARED/repository.done" ] || [ -e "$SHARED/main-suite.finished" ]; do sleep 1; done
  started=$SECONDS
  status=0
  TF_QA_CLIENT_REPOSITORY="$SHARED/repository/tiny-qa" bash scripts/test-client.sh --prepared || status=$?
  echo "client suite: $((SECONDS - started)) s"
  exit "$status"
) > "$SHARED/client-suite.log" 2>&1 &
client_suite=$!
# One TensorFlow thread an op in each worker: the workers, one a core, already fill the cores (as the platform
# config's intra_op_parallelism_threads does for the server; main suite 302 -> 294 s in one A/B run).
export TF_CPP_MIN_LOG_LEVEL=2 TF_QA_TEST_SHARED="$SHARED" TF_NUM_INTRAOP_THREADS=1
started=$SECONDS
main_status=0
.venv/bin/python -m pytest -ra -n auto --dist loadgroup --no-loadscope-reorder --ignore=tests/client "$@" || main_status=$?
echo "main suite: $((SECONDS - started)) s"
touch "$SHARED/main-suite.finished"
client_status=0
wait "$client_suite" || client_status=$?
cat "$SHARED/client-suite.log"
[ "$main_status" = 0 ] || exit "$main_status"
exit "$client_status"
