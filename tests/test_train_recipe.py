"""The demo model's recipe (scripts/train_demo_model.py): the span labels it trains on."""

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
