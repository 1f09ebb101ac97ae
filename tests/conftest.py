"""Shared fixtures: a seeded small DistilBERT QA checkpoint, its transformers pipeline and its SavedModel."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tf_qa.squad import SQUAD_V1_PART, SQUAD_V2_PART

SQUAD_V1, SQUAD_V2 = SQUAD_V1_PART, SQUAD_V2_PART


def squad_pairs(path: Path, limit: int | None = None) -> list[tuple[str, str]]:
    """(question, context) pairs of a SQuAD-format file, in file order."""
    pairs = []
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                pairs.append((qa["question"], paragraph["context"]))
    return pairs[:limit]


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory) -> str:
    from tf_qa.checkpoints import make_random_checkpoint

    return make_random_checkpoint(tmp_path_factory.mktemp("checkpoint"), seed=1234)


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

    repository = tmp_path_factory.mktemp("repository") / "tiny-qa"
    assert main(["export", "--model", checkpoint_dir, "--output", str(repository)]) == 0
    return repository


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
