"""The benchmark's inputs: questions, the seeded base-size checkpoint and its exports, ``tf-qa serve`` rows."""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench_workers import MODEL_NAME, run_worker
from served import Served


def batching_args(timeout_micros: int, threads: int) -> list[str]:
    """``tf-qa serve`` options for server-side batching of up to 16 questions."""
    return [
        "--enable-batching",
        "--max-batch-size",
        "16",
        "--batch-timeout-micros",
        str(timeout_micros),
        "--num-batch-threads",
        str(threads),
    ]


#: The server's batching settings, as in serving/platform_config.pbtxt.
BATCHING_ARGS = batching_args(0, 2)

#: Settings compared by ``--sweep-batching`` (the measurements serving/platform_config.pbtxt's batching was tuned from).
BATCHING_SWEEP = {
    "no batching": [],
    "timeout 2 ms, 1 thread": batching_args(2000, 1),
    "timeout 2 ms, 2 threads": batching_args(2000, 2),
    "timeout 0, 1 thread": batching_args(0, 1),
    "timeout 0, 2 threads": BATCHING_ARGS,
}


def load_questions(count: int, *, held_out: bool = False) -> tuple[list[tuple[str, str]], list[tuple[str, ...]]]:
    """(question, context) pairs and their gold answers: the first ``count`` SQuAD v1.1 dev questions, or with
    ``held_out`` those of the articles the trained demo model never saw; seeded synthetic questions without gold
    answers where the data is absent."""
    from tf_qa.checkpoints import HELD_OUT_TITLES
    from tf_qa.squad import SQUAD_V1_PART, load_squad

    if SQUAD_V1_PART.exists():
        questions = [q for q in load_squad(SQUAD_V1_PART) if not held_out or q.title in HELD_OUT_TITLES][:count]
        return [(q.question, q.context) for q in questions], [q.answers for q in questions]
    import random

    rng = random.Random(0)
    words = "the city river museum was built in by people capital north south century king bridge".split()
    cases = []
    for _ in range(count):
        context = " ".join(rng.choice(words) for _ in range(rng.randint(80, 220))) + "."
        cases.append((" ".join(rng.choices(words, k=6)) + "?", context))
    return cases, []


def version_folder(path: str) -> str:
    """argparse type of a SavedModel version folder: one that holds ``saved_model.pb``."""
    if not (Path(path) / "saved_model.pb").is_file():
        raise argparse.ArgumentTypeError(f"{path} is not a SavedModel version folder (no saved_model.pb in it)")
    return path


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def distilbert_flops(length: int, dim: int = 768, hidden: int = 3072, layers: int = 6) -> float:
    """Multiply-add FLOPs (x2) of one DistilBERT forward pass over ``length`` tokens."""
    per_layer = 2 * length * dim * dim * 4 + 2 * length * dim * hidden * 2 + 2 * 2 * length * length * dim
    return layers * per_layer + 2 * length * dim * 2


#: --model: the trained demo model (EM/F1 mean something), or a seeded random one of distilbert-base's size.
MODELS = ("demo", "base")


def model_size(checkpoint: str) -> dict:
    """The checkpoint's width, FFN width and layers, for ``distilbert_flops``."""
    config = json.loads((Path(checkpoint) / "config.json").read_text())
    return {"dim": config["dim"], "hidden": config["hidden_dim"], "layers": config["n_layers"]}


def prepare(workdir: Path, report, exports: dict[str, dict], model: str = "base") -> tuple[str, str, dict[str, str]]:
    """The checkpoint (TF and PyTorch weights) and its exports, by name (``exports``: each one's
    ``ExportOptions`` fields); reused when present. ``model``: one of ``MODELS``."""
    checkpoint = workdir / "checkpoint"
    if model == "demo":
        from tf_qa.checkpoints import make_trained_demo_checkpoint

        checkpoint_pt = workdir / "checkpoint-pt"
        if not (checkpoint_pt / "config.json").exists():
            report("writing the trained demo model's checkpoint, TensorFlow and PyTorch weights")
            make_trained_demo_checkpoint(checkpoint)
            make_trained_demo_checkpoint(checkpoint_pt, framework="pt")
        return str(checkpoint), str(checkpoint_pt), _exports(checkpoint, workdir, report, exports)
    from tf_qa.checkpoints import BASE, make_random_checkpoint

    if not (checkpoint / "config.json").exists():
        report("making a DistilBERT-base-sized checkpoint (seed 0)")
        make_random_checkpoint(checkpoint, seed=0, size=BASE)
    checkpoint_pt = workdir / "checkpoint-pt"
    if not (checkpoint_pt / "config.json").exists() and importlib.util.find_spec("torch") is not None:
        report("converting it to PyTorch weights for the PyTorch pipeline")
        # from_pretrained(from_tf=True) leaves every weight on the meta device in transformers 4.57.6, so
        # the TF weights are copied into a normally built PyTorch model instead.
        code = (
            "import sys; from transformers import AutoConfig, AutoTokenizer, DistilBertForQuestionAnswering,"
            " TFDistilBertForQuestionAnswering;"
            "from transformers.modeling_tf_pytorch_utils import load_tf2_model_in_pytorch_model as load;"
            "m = load(DistilBertForQuestionAnswering(AutoConfig.from_pretrained(sys.argv[1])),"
            " TFDistilBertForQuestionAnswering.from_pretrained(sys.argv[1]));"
            "m.save_pretrained(sys.argv[2]);"
            " AutoTokenizer.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2])"
        )
        subprocess.run(
            [sys.executable, "-c", code, str(checkpoint), str(checkpoint_pt)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    return str(checkpoint), str(checkpoint_pt), _exports(checkpoint, workdir, report, exports)


def _exports(checkpoint: Path, workdir: Path, report, exports: dict[str, dict], profile: bool = False) -> dict:
    """The checkpoint's exports by name; with ``profile``, the copies the batch-1 breakdown traces
    (``--window-group-size 0``, see breakdown.py)."""
    from tf_qa.graph.options import ExportOptions

    repositories = {}
    for name, fields in exports.items():
        fields = {**fields, **({"window_group_size": 0} if profile else {})}
        repository = workdir / f"repository-{name}{'-profile' if profile else ''}" / MODEL_NAME
        if not exported_with(repository / "1", fields):
            from tf_qa.saved_model.export import export_model

            shutil.rmtree(repository, ignore_errors=True)
            flags = " ".join(f"--{key.replace('_', '-')} {value}" for key, value in fields.items())
            report(f"exporting it with tf-qa export {flags}")
            calibration = int8_calibration() if fields.get("matmul_dtype") == "int8" else None
            options = ExportOptions(**fields)
            export_model(
                str(checkpoint), repository, version=1, options=options, report=report, calibration=calibration
            )
        repositories[name] = str(repository)
    return repositories


def int8_calibration():
    """What the bench's int8 exports calibrate on: the demo model's training questions (as ``tf-qa export --demo``
    does), or where SQuAD is absent 64 synthetic questions (``load_questions``)."""
    from tf_qa.questions import demo_calibration_questions
    from tf_qa.saved_model.calibration import CalibrationSet
    from tf_qa.squad import SquadQuestion

    try:
        return demo_calibration_questions()
    except ValueError:
        cases, _ = load_questions(64)
        questions = tuple(SquadQuestion(str(i), question, context, ()) for i, (question, context) in enumerate(cases))
        return CalibrationSet(questions, "64 synthetic questions")


def exported_with(version_dir: Path, fields: dict) -> bool:
    """Whether ``version_dir`` holds an export made with these ``ExportOptions`` fields (a reusable one)."""
    from tf_qa.saved_model.layout import read_export_record

    if not (version_dir / "saved_model.pb").exists():
        return False
    try:
        options = (read_export_record(version_dir) or {}).get("options", {})
    except ValueError:  # a record that is not JSON: export again rather than trust it
        return False
    return all(options.get(key) == value for key, value in fields.items())


def profile_exports(checkpoint: str, workdir: Path, report, exports: dict[str, dict]) -> dict[str, str]:
    """The exports the batch-1 breakdown traces, by name; reused when present."""
    return _exports(Path(checkpoint), workdir, report, exports, profile=True)


#: Concurrent clients of the latency-under-load rows (each sends one question per request).
LOAD_CLIENTS = (1, 4, 8, 16)


def run_load_rows(repository: str, cases, batching_args: list[str]) -> dict:
    """Latency and q/s at each of ``LOAD_CLIENTS`` concurrent clients against ``tf-qa serve``."""
    with Served(repository, model_name=MODEL_NAME, extra_args=("--poll-seconds", "0", *batching_args)) as server:
        return run_worker("grpc_load", {"target": server.target, "cases": cases, "clients": list(LOAD_CLIENTS)})


def run_server_rows(repository: str, cases, batching_args: list[str]) -> dict:
    """The gRPC rows against ``tf-qa serve`` with ``batching_args``, and the server's load time and peak RSS."""
    started = time.monotonic()
    with Served(repository, model_name=MODEL_NAME, extra_args=("--poll-seconds", "0", *batching_args)) as server:
        load_seconds = time.monotonic() - started
        result = run_worker("grpc", {"target": server.target, "cases": cases})
        result["server_peak_rss_mb"] = server.peak_rss_mb()
        result["server_load_seconds"] = load_seconds
        return result
