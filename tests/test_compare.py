"""tf-qa compare (tf_qa/compare.py): sides, the report and the gate; run against tf-qa serve and an export.
The rollout with real disagreement (float32 against bfloat16 of the trained model): tests/test_trained_model.py."""

from __future__ import annotations

import json

import pytest
from conftest import SQUAD_V1

from tf_qa import compare
from tf_qa.cli import main
from tf_qa.squad import SquadQuestion


@pytest.mark.parametrize(
    "text,target,expected",
    [
        ("label:stable", "h:1", compare.Side("label:stable", target="h:1", model_name="qa", label="stable")),
        ("version:2", "h:1", compare.Side("version:2", target="h:1", model_name="qa", version=2)),
        ("10.0.0.7:8500", None, compare.Side("10.0.0.7:8500", target="10.0.0.7:8500", model_name="qa")),
    ],
)
def test_a_side_is_a_label_a_version_a_target_or_an_export(text, target, expected):
    assert compare.parse_side(text, target, "qa") == expected


@pytest.mark.parametrize(
    "text,target,message",
    [
        ("label:stable", None, "label:stable needs --target"),
        ("version:two", "h:1", "is not label:NAME, version:N, HOST:PORT or a SavedModel folder"),
        ("no/such/export", None, "is not label:NAME"),
    ],
)
def test_a_side_that_is_none_of_them_is_refused_saying_which_forms_exist(text, target, message):
    with pytest.raises(ValueError, match=message):
        compare.parse_side(text, target, "qa")


def _side(answers: dict, seconds=(0.01, 0.02)) -> compare.SideResult:
    return compare.SideResult(answers=answers, seconds=list(seconds))


QUESTIONS = [SquadQuestion(str(i), f"q{i}?", "c.", ("Paris",)) for i in range(4)]


def test_the_report_counts_changed_answers_scores_both_and_the_gate_names_what_fails():
    baseline = _side({"0": "Paris", "1": "Paris", "2": "Paris", "3": "Lyon"})
    candidate = _side({"0": "Paris", "1": "Paris", "2": "Rome", "3": "Lyon"})
    report = compare.report(QUESTIONS, baseline, candidate)
    assert report["agreement"] == 0.75 and [c["id"] for c in report["changed"]] == ["2"]
    assert (report["baseline"]["f1"], report["candidate"]["f1"]) == (75.0, 50.0)
    assert compare.verdict(report, min_agreement=0.75, max_f1_drop=25.0) == []
    failures = compare.verdict(report, min_agreement=0.9, max_f1_drop=10.0)
    assert failures == [
        "agreement 75.00% is under --min-agreement 90.00%",
        "F1 drops 25.00 points, more than --max-f1-drop 10",
    ]


def test_compare_a_served_model_with_its_export_passes_the_gate(tiny_server, saved_model_dir, tmp_path, capsys):
    source = tmp_path / "questions.jsonl"
    records = [
        {"id": f"q{i}", "question": "Where does Ann live?", "context": f"Ann lives in Paris, {i}."} for i in range(6)
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    target = f"127.0.0.1:{tiny_server.port}"
    command = ["compare", "--input", str(source), "--baseline", target, "--candidate", saved_model_dir]
    code = main([*command, "--model-name", "tiny-qa", "--min-agreement", "100%", "--json"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0, lines
    assert "agreement 100.00% (6 of 6 answers identical)" in lines and lines[-1] == "the candidate passes the gate"
    report = json.loads(lines[-2])
    assert report["baseline"]["requests"] == report["candidate"]["requests"] == 6 and "f1" not in report["baseline"]
    assert report["candidate"]["p99_ms"] < 500, report  # an export's first, slow call is a warmup, not timed


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--baseline", "label:stable", "--candidate", "version:2"], "label:stable needs --target"),
        (["--baseline", "h:1", "--candidate", "h:2"], "h:1 needs --model-name"),
    ],
)
def test_compare_refuses_sides_it_cannot_reach_in_one_line(flags, message, capsys):
    assert main(["compare", "--input", str(SQUAD_V1), "--limit", "2", *flags]) == 2
    assert message in capsys.readouterr().err


def test_compare_exits_1_naming_what_fails_the_gate(tiny_server, saved_model_dir, monkeypatch, capsys):
    """The gate's wiring; what fails it is test_the_report_counts_changed_answers_scores_both_and_the_gate_names..."""
    real_report = compare.report

    def half_changed(questions, baseline, candidate):
        report = real_report(questions, baseline, candidate)
        return {**report, "agreement": 0.5}

    monkeypatch.setattr(compare, "report", half_changed)
    target = f"127.0.0.1:{tiny_server.port}"
    command = ["compare", "--input", str(SQUAD_V1), "--limit", "2", "--baseline", target, "--candidate", target]
    assert main([*command, "--model-name", "tiny-qa", "--min-agreement", "0.9"]) == 1
    out = capsys.readouterr().out
    assert "FAIL: agreement 50.00% is under --min-agreement 90.00%" in out and "the candidate fails the gate" in out
