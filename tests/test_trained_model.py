"""The trained demo model, scored: ``tf-qa evaluate`` gives the transformers pipeline's EM and F1 on held-out SQuAD
articles in-process, over gRPC through ``tf-qa serve`` and in TensorFlow's C++ runtime; bfloat16 stays within 1.0
F1 of float32 (test_trained_bf16.py); and the shipped weights reproduce the recipe's own figures on all the
held-out questions.

The runtimes are compared on the first ``COMPARED`` held-out questions (CI's time); the recipe's figures on all."""

from __future__ import annotations

import json

import pytest
from held_out import COMPARED, NEEDS_SQUAD, evaluate, held_out_questions, on_compared

from tf_qa import squad
from tf_qa.checkpoints import HELD_OUT_TITLES, TRAINED_DEMO

pytestmark = NEEDS_SQUAD


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    from tf_qa.checkpoints import make_trained_demo_checkpoint

    return make_trained_demo_checkpoint(tmp_path_factory.mktemp("minilm-squad"))


@pytest.fixture(scope="module")
def pipeline_scores(checkpoint) -> dict:
    """The transformers pipeline (TensorFlow, as the export's source) on the first ``COMPARED`` questions."""
    from transformers import pipeline

    answer = pipeline("question-answering", model=checkpoint, tokenizer=checkpoint, framework="tf", dtype=None)
    questions = held_out_questions()[:COMPARED]
    predictions = {}
    for begin in range(0, len(questions), 32):
        batch = questions[begin : begin + 32]
        results = answer(question=[q.question for q in batch], context=[q.context for q in batch])
        for question, result in zip(batch, results if isinstance(results, list) else [results]):
            predictions[question.id] = result["answer"]
    return squad.evaluate(questions, predictions)


@pytest.fixture(scope="module")
def in_process(trained_fp32_held_out) -> tuple[dict, dict]:
    """The float32 export in-process on the first ``COMPARED`` questions, as ``evaluate`` gives them."""
    return on_compared(trained_fp32_held_out[1])


def test_the_demo_weights_and_record_ship_together():
    record = json.loads((TRAINED_DEMO / "training.json").read_text())
    assert record["held_out_titles"] == sorted(HELD_OUT_TITLES)
    assert (TRAINED_DEMO / "MODEL_CARD.md").read_text().count(f"F1 {record['held_out']['f1']:.2f}") >= 1


def test_in_process_scores_equal_the_pipeline(in_process, pipeline_scores):
    print(f"held out, pipeline: {pipeline_scores}; tf-qa in-process: {in_process[0]}")
    assert in_process[0] == pytest.approx(pipeline_scores, abs=1e-9)


def test_in_process_scores_reproduce_the_recipe(trained_fp32_held_out):
    """The repository's weights give what the recipe measured (its pipeline in PyTorch, on the weights as shipped)."""
    recorded = json.loads((TRAINED_DEMO / "training.json").read_text())["held_out"]
    scores = trained_fp32_held_out[0]
    print(f"held out, all {scores['total']} questions: {scores}; the recipe's record: {recorded}")
    assert scores["total"] == recorded["questions"]
    assert scores["f1"] == pytest.approx(recorded["f1"], abs=0.5)
    assert scores["exact_match"] == pytest.approx(recorded["exact_match"], abs=0.5)


def test_grpc_answers_equal_in_process(trained_fp32, in_process, tmp_path_factory):
    from tf_qa.server.model_server import ModelServer
    from tf_qa.server.options import ServeOptions

    options = ServeOptions(model_base_path=str(trained_fp32), model_name="minilm-squad", port=0, poll_seconds=0)
    server = ModelServer(options).start()
    try:
        target = ("--target", f"127.0.0.1:{server.port}", "--model-name", "minilm-squad")
        over_grpc = evaluate(tmp_path_factory, *target)
    finally:
        server.stop(0)
    assert over_grpc == in_process


def test_native_runtime_answers_equal_in_process(trained_fp32, in_process, tmp_path_factory):
    assert evaluate(tmp_path_factory, "--saved-model", str(trained_fp32), "--native") == in_process
