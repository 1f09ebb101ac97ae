"""The trained demo model in bfloat16: opt-in, fits TF Serving, within 1.0 F1 of float32 on held-out questions; and
the README's rollout of it (float32 as version 1, bfloat16 as version 2), run as written. A file of its own, so that
it runs beside test_trained_model.py rather than after it (the exports are made once per run, in conftest)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from conftest import SQUAD_V1
from held_out import NEEDS_SQUAD, held_out_questions, within_f1_of_float32

from tf_qa.cli import main
from tf_qa.saved_model.layout import read_export_record

pytestmark = NEEDS_SQUAD


# trained_bf16 first: this file's worker exports bfloat16 while test_trained_model.py's exports float32 and
# scores it; float32's figures are asked for last, by when they are made.
def test_bfloat16_is_opt_in_fits_tf_serving_and_loses_at_most_one_f1_point(
    trained_bf16, trained_fp32, tmp_path_factory, request
):
    exports = {"fp32": trained_fp32, "bf16": trained_bf16}
    options = {name: read_export_record(path / "1")["options"] for name, path in exports.items()}
    assert options["fp32"]["matmul_dtype"] == "float32" and options["bf16"]["matmul_dtype"] == "bfloat16"
    assert main(["validate", str(trained_bf16)]) == 0  # the native check at bf16's tolerance included
    within_f1_of_float32(tmp_path_factory, request, trained_bf16, "bfloat16")


def _readme_block(marker: str) -> str:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker} -->\s*```bash\n(.*?)```", readme, re.S)
    assert match, f"README has no block marked {marker}"
    return match.group(1)


def _rollout_config(base, logs) -> str:
    return (
        f'model_config_list {{ config {{ name: "demo-qa" base_path: "{base}" model_platform: "tensorflow"\n'
        "  model_version_policy { latest { num_versions: 2 } }\n"
        '  version_labels { key: "stable" value: 1 }\n'
        f'  logging_config {{ log_collector_config {{ filename_prefix: "{logs}" }}\n'
        "    sampling_config { sampling_rate: 1.0 } }\n"
        "} }\n"
    )


def test_the_readmes_rollout_passes_the_canary_check_and_moves_the_label(trained_bf16, trained_fp32, tmp_path):
    """Version 1 = the float32 export, version 2 = the bfloat16 one; traffic logged under the label, then the
    README's block as written: compare on held-out questions and on the replayed log, move the label."""
    from tf_qa.client import QAClient
    from tf_qa.server.model_server import ModelServer
    from tf_qa.server.options import ServeOptions

    base = tmp_path / "export" / "demo-qa"
    shutil.copytree(trained_fp32 / "1", base / "1")
    shutil.copytree(trained_bf16 / "1", base / "2")
    (tmp_path / "models.config").write_text(_rollout_config(base, tmp_path / "logs" / "demo-qa"))
    options = ServeOptions(
        model_config_file=str(tmp_path / "models.config"), model_config_file_poll_wait_seconds=0.5, port=0
    )
    server = ModelServer(options).start()
    target = f"127.0.0.1:{server.port}"
    try:
        with QAClient(target, "demo-qa", version_label="stable", timeout=60) as client:
            for question in held_out_questions()[-20:]:
                client.answer(question.question, question.context)
        logged = server.metrics.request_log_records.labels("demo-qa")
        deadline = time.monotonic() + 10
        while logged._value.get() < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        script = (
            _readme_block("rollout-example")
            .replace(".venv/bin/tf-qa", str(Path(sys.executable).with_name("tf-qa")))
            .replace("localhost:8500", target)
            .replace("../shared/data/squad/squad-v1.1-dev-part1.json", str(SQUAD_V1))
        )
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True)
        print(done.stdout)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.count("the candidate passes the gate") == 2, done.stdout
        assert "on 20 questions" in done.stdout and "on 40 questions" in done.stdout, done.stdout
        with QAClient(target, "demo-qa", version_label="stable", timeout=60) as client:
            deadline = time.monotonic() + 15
            while client.metadata()["version"] != 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert client.metadata()["version"] == 2, "the label never moved"
    finally:
        server.stop(0)
