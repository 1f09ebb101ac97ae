"""The demo model's cloze stage (scripts/cloze_questions.py): questions made from paragraphs, answers at their
offsets."""

import doctest

import pytest
import script_modules

from tf_qa.squad import SquadQuestion


@pytest.fixture(scope="module")
def cloze():
    return script_modules.load("cloze_questions")


def on(paragraph: str, title: str = "t") -> SquadQuestion:
    return SquadQuestion(f"{title}-{len(paragraph)}", "Unused?", paragraph, ("x",), title, (0,))


PARAGRAPH = (
    "The Normans settled in Normandy around the year 911. Their duchy held 3 million people in 1066. "
    "About 40% of them spoke Norse, according to Dudo of Saint-Quentin. It grew."
)


@pytest.mark.parametrize(
    "sentence,span,word",
    [
        ("The tower was finished in 1889 by the engineers.", "1889", "when"),
        ("The tower drew 7 million visitors in one season.", "7 million", "how many"),
        ("About 42% of the visitors came from abroad that year.", "42%", "what percentage"),
        ("The tower stands in the middle of Paris for all to see.", "Paris", "what"),
        ("The design was chosen by Gustave Eiffel over many others.", "Gustave Eiffel", "what"),
    ],
)
def test_a_span_and_its_question_word(cloze, sentence, span, word):
    made = cloze.cloze_questions([on(sentence)], per_paragraph=10, seed=0, drop=0.0)
    questions = {q.answers[0]: q.question for q in made}
    assert questions[span] == f"{word} {sentence.replace(span + ' ', '').rstrip('.')}?"


def test_every_answer_stands_at_its_offset(cloze):
    made = cloze.cloze_questions([on(PARAGRAPH)], per_paragraph=20, seed=0)
    assert made and all(q.context[q.answer_starts[0] :].startswith(q.answers[0]) for q in made)
    assert {q.answers[0] for q in made} >= {"Normandy", "911", "3 million", "1066", "40%", "Dudo of Saint-Quentin"}


def test_clause_openers_and_sentence_starts_are_not_names(cloze):
    spans = {q.answers[0] for q in cloze.cloze_questions([on(PARAGRAPH)], per_paragraph=20, seed=0)}
    assert not spans & {"The", "Their", "About", "It", "The Normans"}


def test_short_and_long_sentences_make_no_questions(cloze):
    long_sentence = "In 1900 " + " ".join(["the Normans built towers"] * 10) + " in Normandy."
    assert cloze.cloze_questions([on("It grew in 1066."), on(long_sentence)], per_paragraph=5, seed=0) == []


def test_a_paragraph_counts_once_and_per_paragraph_bounds_it(cloze):
    two = [on(PARAGRAPH, "a"), on(PARAGRAPH, "a"), on(PARAGRAPH.replace("Normans", "Vikings"), "b")]
    made = cloze.cloze_questions(two, per_paragraph=3, seed=0)
    assert [q.title for q in made] == ["a"] * 3 + ["b"] * 3


def test_the_seed_decides_the_draw(cloze):
    def draw(seed):
        return [(q.question, q.answers) for q in cloze.cloze_questions([on(PARAGRAPH)], per_paragraph=3, seed=seed)]

    assert draw(0) == draw(0)
    assert draw(0) != draw(1)


def test_dropped_words_leave_the_answer_out_of_the_question(cloze):
    for q in cloze.cloze_questions([on(PARAGRAPH)], per_paragraph=20, seed=3, drop=0.5):
        assert q.question.endswith("?") and q.answers[0] not in q.question


def test_the_docstring_example_holds(cloze):
    assert doctest.testmod(cloze).failed == 0
