"""Shared fixtures: a seeded small DistilBERT QA checkpoint, its transformers pipeline and its SavedModel."""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tf_qa.squad import SQUAD_V1_PART, SQUAD_V2_PART

SQUAD_V1, SQUAD_V2 = SQUAD_V1_PART, SQUAD_V2_PART
#: The deployment kit (serving/): TF Serving's config files the tests serve with.
KIT = Path(__file__).resolve().parents[1] / "serving"


def debian_setup_log() -> str:
    """What scripts/setup-debian.sh said, once it has finished (scripts/test.sh runs it beside the suite and
    touches its marker; waited for up to 5 minutes); "not run" outside scripts/test.sh."""
    shared = os.environ.get("TF_QA_TEST_SHARED")
    if not shared:
        return "not run"
    marker, deadline = Path(shared) / "debian-setup.done", time.monotonic() + 300
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(1)
    log = Path(shared) / "debian-setup.log"
    return log.read_text().strip()[-300:] if marker.exists() and log.exists() else "not finished"


def squad_pairs(path: Path, limit: int | None = None) -> list[tuple[str, str]]:
    """(question, context) pairs of a SQuAD-format file, in file order."""
    pairs = []
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                pairs.append((qa["question"], paragraph["context"]))
    return pairs[:limit]


#: The files that ask the pipeline the most: one worker, so they share its cached model outputs.
PIPELINE_FILES = ("test_parity.py", "test_e2e.py", "test_native.py")


#: The longest groups (a minute or more of one worker's time each), started first so that no worker is left
#: with one of them at the end (scripts/test.sh passes --no-loadscope-reorder: groups go in this order).
LONGEST_GROUPS = (
    "test_trained_bf16.py",
    "test_trained_model.py",
    "pipeline",
    "test_trained_branches.py",
    "test_trained_int8.py",
)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (--dist loadgroup), a test file runs in one worker, so its module fixtures are built
    once; the files that ask the pipeline the most share a worker and so its cached model outputs."""
    groups = {}
    for item in items:
        name = item.path.name
        groups[item.nodeid] = "pipeline" if name in PIPELINE_FILES else name
        item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))
    rank = {group: index for index, group in enumerate(LONGEST_GROUPS)}
    items.sort(key=lambda item: rank.get(groups[item.nodeid], len(rank)))  # stable: the rest keep their order


def _made_once(tmp_path_factory, name: str, make) -> Path:
    """``make(path)`` once per test run, also under pytest-xdist: the first worker makes it, the others wait for
    it and reuse it. Read-only for the tests. ``TF_QA_TEST_SHARED`` names a folder to keep them in after the run
    (scripts/test.sh hands the export to the client suite that way)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers of this run
    root = Path(os.environ.get("TF_QA_TEST_SHARED") or root)
    path = root / name
    from filelock import FileLock

    with FileLock(str(path) + ".lock"):
        if not (root / f"{name}.done").exists():
            make(path)
            (root / f"{name}.done").touch()
    return path


def _demo_export(tmp_path_factory, name: str, *flags: str) -> Path:
    """``tf-qa export --demo`` as a user runs it, once per run (each precision in the worker that first needs it)."""
    from tf_qa.cli import main

    def export(path: Path) -> None:
        assert main(["export", "--demo", "--output", str(path), *flags]) == 0

    return _made_once(tmp_path_factory, name, export)


@pytest.fixture(scope="session")
def trained_fp32(tmp_path_factory) -> Path:
    """The trained demo model exported in float32: a model folder (version 1)."""
    return _demo_export(tmp_path_factory, "trained-fp32")


@pytest.fixture(scope="session")
def trained_bf16(tmp_path_factory) -> Path:
    """The trained demo model exported with --matmul-dtype bfloat16: a model folder (version 1)."""
    return _demo_export(tmp_path_factory, "trained-bf16", "--matmul-dtype", "bfloat16")


@pytest.fixture(scope="session")
def trained_bf16_branches(tmp_path_factory) -> Path:
    """The trained demo model exported with --matmul-dtype bfloat16 --parallel-branches 2: a model folder."""
    flags = ("--matmul-dtype", "bfloat16", "--parallel-branches", "2")
    return _demo_export(tmp_path_factory, "trained-bf16-branches", *flags)


@pytest.fixture(scope="session")
def trained_int8(tmp_path_factory) -> Path:
    """The trained demo model exported with --matmul-dtype int8 --parallel-branches 2 (calibrated on its training
    articles, as --demo does): a model folder (version 1)."""
    return _demo_export(tmp_path_factory, "trained-int8", "--matmul-dtype", "int8", "--parallel-branches", "2")


@pytest.fixture(scope="session")
def trained_fp32_held_out(trained_fp32, tmp_path_factory) -> tuple[dict, dict]:
    """``tf-qa evaluate`` of the float32 export in-process on every held-out question of the trained demo model:
    its figures, and its answers by question id; made once a run for test_trained_model.py and
    test_trained_bf16.py alike."""
    from held_out import evaluate

    def score(path: Path) -> None:
        path.write_text(json.dumps(evaluate(tmp_path_factory, "--saved-model", str(trained_fp32), limit=None)))

    scores, answers = json.loads(_made_once(tmp_path_factory, "trained-fp32-held-out.json", score).read_text())
    return scores, answers


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory) -> str:
    from tf_qa.checkpoints import make_random_checkpoint

    return str(_made_once(tmp_path_factory, "checkpoint", lambda path: make_random_checkpoint(path, seed=1234)))


@pytest.fixture(scope="session")
def hf_tokenizer(checkpoint_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(checkpoint_dir)


@pytest.fixture(scope="session")
def pipe(checkpoint_dir):
    from parity import forward_once
    from transformers import pipeline

    # dtype=None: without it transformers 4.57.6 needs torch even for framework="tf".
    return forward_once(
        pipeline("question-answering", model=checkpoint_dir, tokenizer=checkpoint_dir, framework="tf", dtype=None)
    )


@pytest.fixture(scope="session")
def qa_model(checkpoint_dir):
    from tf_qa.graph.model import QuestionAnsweringModel

    return QuestionAnsweringModel.from_pretrained(checkpoint_dir)


@pytest.fixture(scope="session")
def saved_model_dir(tiny_repository) -> str:
    """The version folder of ``tiny_repository``: the SavedModel ``tf-qa export`` wrote; read-only."""
    return str(tiny_repository / "1")


@pytest.fixture(scope="session")
def tiny_repository(checkpoint_dir, tmp_path_factory) -> Path:
    """The seeded checkpoint exported once by ``tf-qa export`` as model ``tiny-qa``; read-only (copy to change)."""
    from tf_qa.cli import main

    def export(path: Path) -> None:
        assert main(["export", "--model", checkpoint_dir, "--output", str(path / "tiny-qa")]) == 0

    return _made_once(tmp_path_factory, "repository", export) / "tiny-qa"


@contextmanager
def serving_tiny(tiny_repository, **options):
    """``tiny_repository`` served in-process as model ``tiny-qa`` over gRPC and REST on free ports, with ``options``
    (``ServeOptions`` fields) besides."""
    from tf_qa.server.model_server import ModelServer
    from tf_qa.server.options import ServeOptions

    settings = {"port": 0, "poll_seconds": 0, "rest_api_port": 0, **options}
    server = ModelServer(ServeOptions(model_base_path=str(tiny_repository), model_name="tiny-qa", **settings)).start()
    try:
        yield server
    finally:
        server.stop(0)


@pytest.fixture(scope="session")
def tiny_server(tiny_repository):
    """``serving_tiny`` with metrics at the kit's monitoring config's path; shared, never changed."""
    with serving_tiny(tiny_repository, monitoring_config_file=str(KIT / "monitoring.config")) as server:
        yield server


@pytest.fixture(scope="session")
def saved_model(saved_model_dir):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  registers the TF Text ops the graph uses

    return tf.saved_model.load(saved_model_dir)


def pytest_sessionfinish(session):
    """Under pytest-xdist, a worker hands its parity counts to the controller (see pytest_testnodedown)."""
    from parity import SUMMARIES

    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["parity_summaries"] = list(SUMMARIES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    from parity import SUMMARIES

    SUMMARIES.extend(getattr(node, "workeroutput", {}).get("parity_summaries", []))


def pytest_terminal_summary(terminalreporter):
    """Prints the parity counts of every compared set, passed or failed."""
    from parity import SUMMARIES

    if SUMMARIES:
        terminalreporter.section("parity with transformers.pipeline")
        for line in sorted(SUMMARIES):
            terminalreporter.write_line(line)
