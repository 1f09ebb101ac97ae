"""``tf-qa batch`` on Apache Beam (DirectRunner): the same answers as ``tf-qa evaluate`` with both model handlers,
and every bad record in the dead-letter file without failing the job."""

from __future__ import annotations

import json

import pytest
from conftest import SQUAD_V1

from tf_qa.cli import main
from tf_qa.squad import evaluate, load_squad

IN_PROCESS = ["--", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
LIMIT = 500


@pytest.fixture(scope="module")
def squad_part(tmp_path_factory):
    """The first LIMIT questions of the SQuAD part, as a SQuAD file."""
    if not SQUAD_V1.exists():
        pytest.skip(f"{SQUAD_V1} is absent")
    data = json.loads(SQUAD_V1.read_text(encoding="utf-8"))
    kept, articles = 0, []
    for article in data["data"]:
        paragraphs = []
        for paragraph in article["paragraphs"]:
            qas = paragraph["qas"][: LIMIT - kept]
            kept += len(qas)
            if qas:
                paragraphs.append({**paragraph, "qas": qas})
        if paragraphs:
            articles.append({**article, "paragraphs": paragraphs})
    path = tmp_path_factory.mktemp("squad") / "part.json"
    path.write_text(json.dumps({"version": "1.1", "data": articles}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def evaluate_predictions(squad_part, saved_model_dir):
    """What tf-qa evaluate --saved-model answers, per question id."""
    from tf_qa.saved_model.answerer import SavedModelAnswerer

    questions = load_squad(squad_part)
    answerer = SavedModelAnswerer(saved_model_dir)
    predictions = {}
    for begin in range(0, len(questions), 64):
        batch = questions[begin : begin + 64]
        results = answerer.answer_batch([q.question for q in batch], [q.context for q in batch])
        predictions.update({q.id: result["answer"] for q, result in zip(batch, results)})
    return predictions


def _read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("handler", ["saved-model", "target"])
def test_batch_answers_as_evaluate(
    handler, squad_part, saved_model_dir, tiny_server, evaluate_predictions, tmp_path, capsys
):
    where = (
        ["--saved-model", saved_model_dir]
        if handler == "saved-model"
        else ["--target", f"127.0.0.1:{tiny_server.port}", "--model-name", "tiny-qa"]
    )
    output = tmp_path / "answers.jsonl"
    assert main(["batch", "--input", str(squad_part), "--output", str(output), *where, *IN_PROCESS]) == 0
    assert f"answered {LIMIT}, dead-lettered 0" in capsys.readouterr().out
    answers = {record["id"]: record["answer"] for record in _read_jsonl(output)}
    assert answers == evaluate_predictions
    questions = load_squad(squad_part)
    assert evaluate(questions, answers) == evaluate(questions, evaluate_predictions)


def test_bad_records_go_to_the_dead_letter_file(saved_model_dir, tmp_path, capsys):
    good = [
        {"id": f"good{i}", "question": "What is the capital?", "context": "Paris is the capital of France."}
        for i in range(20)
    ]
    bad = {
        "no context": {"id": "no context", "question": "Who?"},
        "empty question": {"id": "empty question", "question": "  ", "context": "x"},
        "top_k 0": {"id": "top_k 0", "question": "q", "context": "c", "top_k": 0},
        "surrogate": {"id": "surrogate", "question": "\ud800", "context": "c"},
        "over max_text_bytes": {"id": "over max_text_bytes", "question": "q?", "context": "word " * 60000},
        "control characters only": {"id": "control characters only", "question": "q?", "context": "\x00\x01"},
    }
    lines = [json.dumps(record) for record in good[:10]] + [json.dumps(record) for record in bad.values()]
    lines += ["not json", json.dumps([1, 2])] + [json.dumps(record) for record in good[10:]]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"
    assert (
        main(
            [
                "batch",
                "--input",
                str(tmp_path / "in.jsonl"),
                "--output",
                str(output),
                "--saved-model",
                saved_model_dir,
                *IN_PROCESS,
            ]
        )
        == 0
    )
    assert "answered 20, dead-lettered 8" in capsys.readouterr().out
    assert sorted(record["id"] for record in _read_jsonl(output)) == sorted(record["id"] for record in good)
    errors = {record["id"]: record["error"] for record in _read_jsonl(tmp_path / "out.jsonl.errors.jsonl")}
    assert set(errors) == set(bad) | {None}
    assert "over the limit max_text_bytes" in errors["over max_text_bytes"]
    assert "context is empty or whitespace-only" in errors["control characters only"]


@pytest.mark.parametrize(
    ("name", "content", "message", "exit_code"),
    [
        ("missing.jsonl", None, "cannot read --input", 1),
        ("not-squad.json", '{"data": 5}', "is not in SQuAD format", 1),
    ],
)
def test_an_input_that_cannot_be_read_is_one_line(name, content, message, exit_code, saved_model_dir, tmp_path, capsys):
    if content is not None:
        (tmp_path / name).write_text(content, encoding="utf-8")
    code = main(
        [
            "batch",
            "--input",
            str(tmp_path / name),
            "--output",
            str(tmp_path / "out.jsonl"),
            "--saved-model",
            saved_model_dir,
            *IN_PROCESS,
        ]
    )
    err = capsys.readouterr().err
    assert code == exit_code and message in err and "Traceback" not in err, err
