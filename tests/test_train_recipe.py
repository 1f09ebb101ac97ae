"""The demo model's recipe (scripts/train_demo_model.py): the span labels it trains on."""

import json

import pytest
import script_modules
from transformers import DistilBertTokenizerFast

from tf_qa.checkpoints import BUNDLED_VOCAB
from tf_qa.squad import SquadQuestion


@pytest.fixture(scope="module")
def recipe():
    return script_modules.load("train_demo_model")


@pytest.fixture(scope="module")
def tokenizer():
    return DistilBertTokenizerFast(str(BUNDLED_VOCAB))


CONTEXT = "Paris is the capital of France. Berlin is the capital of Germany."


def labels(recipe, tokenizer, question, **window):
    ids, _, starts, ends = recipe.training_features([question], tokenizer, all_answers=True, **window)
    return [
        [tokenizer.decode(ids[w][s : e + 1]) if s else "[CLS]" for s, e in zip(starts[w], ends[w])]
        for w in range(len(ids))
    ]


def test_every_gold_answer_is_a_label(recipe, tokenizer):
    question = SquadQuestion("a", "What is the capital of France?", CONTEXT, ("Paris", "Paris is"), "t", (0, 0))
    assert labels(recipe, tokenizer, question, max_seq_len=64, doc_stride=16) == [["paris", "paris is"]]


def test_an_answer_outside_a_window_points_at_cls(recipe, tokenizer):
    question = SquadQuestion("b", "Capital of France?", CONTEXT, ("Paris",), "t", (0,))
    assert labels(recipe, tokenizer, question, max_seq_len=18, doc_stride=4) == [["paris"], ["[CLS]"]]


def test_an_unanswerable_question_points_at_cls_in_every_window(recipe, tokenizer):
    question = SquadQuestion("c", "What is the capital of Spain?", CONTEXT, (), "t", ())
    windows = labels(recipe, tokenizer, question, max_seq_len=18, doc_stride=4)
    assert len(windows) > 1 and all(window == ["[CLS]"] for window in windows)
    assert labels(recipe, tokenizer, question, max_seq_len=64, doc_stride=16) == [["[CLS]"]]


def test_plausible_answers_become_the_targets_of_unanswerable_questions_not_held_out(recipe, tokenizer, tmp_path):
    qas = [
        {"id": "u", "question": "What is the capital of Spain?", "is_impossible": True, "answers": [],
         "plausible_answers": [{"text": "Berlin", "answer_start": 32}]},
        {"id": "a", "question": "What is the capital of France?", "is_impossible": False,
         "answers": [{"text": "Paris", "answer_start": 0}]},
    ]  # fmt: skip
    articles = [{"title": t, "paragraphs": [{"context": CONTEXT, "qas": qas}]} for t in ("kept", "held")]
    (tmp_path / "v2.json").write_text(json.dumps({"version": "v2.0", "data": articles}))
    questions = recipe.plausible_answer_questions(str(tmp_path / "v2.json"), {"held"})
    assert [(q.id, q.title, q.answers) for q in questions] == [("u", "kept", ("Berlin",))]
    assert labels(recipe, tokenizer, questions[0], max_seq_len=64, doc_stride=16) == [["berlin"]]
