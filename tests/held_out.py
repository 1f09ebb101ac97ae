"""The trained demo model's held-out questions and ``tf-qa evaluate`` on them, for the tests that score it
(test_trained_model.py, test_trained_bf16.py, test_trained_branches.py, test_trained_int8.py)."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from conftest import SQUAD_V1

from tf_qa import squad
from tf_qa.checkpoints import HELD_OUT_TITLES
from tf_qa.cli import main

#: Skips a test module where the SQuAD part is absent.
NEEDS_SQUAD = pytest.mark.skipif(not SQUAD_V1.exists(), reason=f"{SQUAD_V1} is absent")
#: Held-out questions every runtime and precision answers (the first of them, in file order).
COMPARED = 100
#: The largest F1 a reduced-precision export (bfloat16, int8) may lose against float32 on the held-out questions.
MAX_F1_DROP = 1.0


def evaluate(tmp_path_factory, *where: str, limit: int | None = COMPARED) -> tuple[dict, dict]:
    """``tf-qa evaluate`` on the held-out articles (the first ``limit`` questions): its JSON figures, and its
    answers by question id (``--predictions``)."""
    out, predictions = io.StringIO(), tmp_path_factory.mktemp("predictions") / "predictions.json"
    command = ["evaluate", "--squad", str(SQUAD_V1), "--articles", *HELD_OUT_TITLES, "--json", *where]
    command += ["--predictions", str(predictions)] + (["--limit", str(limit)] if limit else [])
    with contextlib.redirect_stdout(out):
        assert main(command) == 0
    return json.loads(out.getvalue().strip().splitlines()[-1]), json.loads(predictions.read_text())


def held_out_questions() -> list:
    return [q for q in squad.load_squad(SQUAD_V1) if q.title in HELD_OUT_TITLES]


def on_compared(answers: dict) -> tuple[dict, dict]:
    """The figures and answers of the first ``COMPARED`` held-out questions, from answers to more of them."""
    questions = held_out_questions()[:COMPARED]
    predictions = {q.id: answers[q.id] for q in questions}
    return squad.evaluate(questions, predictions), predictions


def within_f1_of_float32(tmp_path_factory, request, export, name: str) -> dict:
    """``tf-qa evaluate`` of the model folder ``export`` on the compared held-out questions, held to at most
    ``MAX_F1_DROP`` below float32's F1 there; its answers by question id."""
    figures, answers = evaluate(tmp_path_factory, "--saved-model", str(export))
    fp32, _ = on_compared(request.getfixturevalue("trained_fp32_held_out")[1])
    print(f"held out, float32: {fp32}; {name}: {figures}")
    assert figures["total"] == fp32["total"]
    assert fp32["f1"] - figures["f1"] <= MAX_F1_DROP
    return answers
