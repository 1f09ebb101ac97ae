#!/usr/bin/env bash
# The main job on a fresh machine: set up, export a model, serve it, ask it a question, stop.
#   TF_QA_MODEL  checkpoint to export (hub name or folder); default distilbert-base-uncased-distilled-squad.
#                When it cannot be loaded (no network, no folder) the trained demo model is exported instead:
#                all-MiniLM-L6-v2 fine-tuned on part of SQuAD (tf_qa/data/minilm_squad/MODEL_CARD.md).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "[setup] .venv (the installers' output: .venv/setup.log)"
mkdir -p .venv && bash scripts/setup.sh > .venv/setup.log 2>&1 || { cat .venv/setup.log; exit 1; }
MODEL=${TF_QA_MODEL:-distilbert-base-uncased-distilled-squad}
NAME=${TF_QA_MODEL_NAME:-distilbert-squad}
PORT=${TF_QA_PORT:-8500}
TF_QA=.venv/bin/tf-qa

if ! $TF_QA export --model "$MODEL" --output "export/$NAME"; then
  echo "could not export $MODEL; exporting the trained demo model instead" >&2
  $TF_QA export --demo --output "export/$NAME"
fi

$TF_QA serve --model-base-path "export/$NAME" --model-name "$NAME" --port "$PORT" 2> .venv/serve.log &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 120); do
  kill -0 $SERVER 2>/dev/null || { cat .venv/serve.log >&2; exit 1; }
  if TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python - "$PORT" "$NAME" <<'PY' 2>/dev/null; then break; fi
import sys
from tf_qa.client import QAClient
with QAClient(f"127.0.0.1:{sys.argv[1]}", sys.argv[2], timeout=2, retries=0) as client:
    client.status()
PY
  sleep 1
done

$TF_QA ask --target "127.0.0.1:$PORT" --model-name "$NAME" \
  --question "What is the capital of France?" \
  --context "Paris is the capital and most populous city of France, with about 2.1 million residents."
