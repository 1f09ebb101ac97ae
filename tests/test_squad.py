"""The SQuAD metric against hand-worked cases, and `tf-qa evaluate` on the shared dev file."""

from __future__ import annotations

import json

import pytest
from conftest import SQUAD_V1, SQUAD_V2

from tf_qa import squad
from tf_qa.cli import main


@pytest.mark.parametrize(
    "prediction,gold,em,f1",
    [
        ("the Eiffel Tower", ["Eiffel Tower"], 1.0, 1.0),  # articles
        ("Eiffel Tower!!", ["eiffel tower"], 1.0, 1.0),  # punctuation and case
        ("  Eiffel \n Tower ", ["Eiffel Tower"], 1.0, 1.0),  # whitespace
        ("in Paris", ["Paris, France"], 0.0, 0.5),  # 1 common token: P=1/2, R=1/2
        ("Paris", ["Lyon", "paris", "France"], 1.0, 1.0),  # best over several gold answers
        ("Paris France", ["Paris"], 0.0, 2 / 3),  # P=1/2, R=1: F1=2/3
        ("", [], 1.0, 1.0),  # unanswerable, empty prediction
        ("Paris", [], 0.0, 0.0),  # unanswerable, an answer given
        ("the", ["a"], 1.0, 1.0),  # both normalize to nothing
    ],
)
def test_metric_hand_worked(prediction, gold, em, f1):
    assert squad.exact_match(prediction, gold) == em
    assert squad.f1(prediction, gold) == pytest.approx(f1)


def test_evaluate_totals():
    questions = [squad.SquadQuestion("1", "q", "c", ("Paris",)), squad.SquadQuestion("2", "q", "c", ())]
    assert squad.evaluate(questions, {"1": "paris", "2": ""}) == {"exact_match": 100.0, "f1": 100.0, "total": 2}
    assert squad.evaluate(questions, {"1": "paris"})["exact_match"] == 50.0


@pytest.mark.parametrize("path", [SQUAD_V1, SQUAD_V2], ids=["v1.1", "v2.0"])
def test_evaluate_command_runs(path, saved_model_dir, capsys):
    if not path.exists():
        pytest.skip(f"{path} is absent")
    assert main(["evaluate", "--squad", str(path), "--saved-model", saved_model_dir, "--limit", "64", "--json"]) == 0
    out = capsys.readouterr().out
    assert "64 questions" in out and "exact match" in out
    assert ("v2.0" in out) == (path == SQUAD_V2)


def _write_squad(path, titles):
    qa = {"question": "Who?", "answers": [{"text": "Ada", "answer_start": 0}]}
    articles = [
        {"title": title, "paragraphs": [{"context": "Ada wrote it.", "qas": [{"id": title, **qa}]}]} for title in titles
    ]
    path.write_text(json.dumps({"data": articles}))
    return str(path)


def test_load_squad_keeps_titles_and_answer_starts(tmp_path):
    questions = squad.load_squad(_write_squad(tmp_path / "s.json", ["A", "B"]))
    assert [(q.title, q.answers, q.answer_starts) for q in questions] == [("A", ("Ada",), (0,)), ("B", ("Ada",), (0,))]


def test_evaluate_keeps_the_articles_asked_for_and_writes_their_predictions(tmp_path, saved_model_dir, capsys):
    path, predictions = _write_squad(tmp_path / "s.json", ["A", "B", "C"]), tmp_path / "predictions.json"
    flags = ["--saved-model", saved_model_dir, "--articles", "A", "C", "--predictions", str(predictions)]
    assert main(["evaluate", "--squad", path, *flags]) == 0
    assert "2 questions" in capsys.readouterr().out
    written = json.loads(predictions.read_text())  # {question id: answer}, as SQuAD's evaluation script reads
    assert sorted(written) == ["A", "C"] and all(isinstance(answer, str) for answer in written.values())


@pytest.mark.parametrize(
    "flags,code,message",
    [
        (["--saved-model", "unused", "--articles", "A", "Nowhere"], 1, "has no article titled Nowhere"),
        (["--target", "127.0.0.1:1", "--model-name", "m", "--native"], 2, "--native runs a --saved-model"),
        (["--saved-model", "unused", "--predictions", "/proc/no/such.json"], 1, "cannot write /proc/no/such.json"),
    ],
)
def test_evaluate_refuses_in_one_line(tmp_path, flags, code, message, capsys):
    path = _write_squad(tmp_path / "s.json", ["A"])
    assert main(["evaluate", "--squad", path, *flags]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
