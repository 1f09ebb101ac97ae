"""Cloze questions made from SQuAD paragraphs: the demo model's first training stage (``--cloze-epochs``).

A sentence of a paragraph becomes a question about one of its names or numbers: the span is taken out, a
question word put first (``when`` for a year, ``how many`` for another number, ``what percentage``, ``what``
for a name) and a tenth of the other words dropped, so that the model must find the sentence by more than its
exact words. The span, where it stands in the paragraph, is the answer. No labels are read: the questions come
from the training articles' paragraphs alone, and teach span boundaries and matching before the SQuAD questions
do (MODEL_CARD.md gives the figures).

>>> from tf_qa.squad import SquadQuestion
>>> paragraph = "The game was played in 2016 in Santa Clara. The Denver Broncos beat the Carolina Panthers."
>>> question = SquadQuestion("q1", "Who won?", paragraph, ("Denver Broncos",), "Super_Bowl_50", (48,))
>>> for cloze in cloze_questions([question], per_paragraph=3, seed=0, drop=0.0):
...     print(f"{cloze.question!r} -> {cloze.answers[0]!r} at {cloze.answer_starts[0]}")
'when The game was played in in Santa Clara?' -> '2016' at 23
'what The Denver Broncos beat the?' -> 'Carolina Panthers' at 72
'what The game was played in 2016 in?' -> 'Santa Clara' at 31
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

from tf_qa.squad import SquadQuestion

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
NUMBER = re.compile(r"\b\d[\d,]*(?:\.\d+)?(?:\s+(?:million|billion|thousand|percent|per cent))?\b%?")
NAME = re.compile(r"\b[A-Z][\w'\-]*(?:\s+(?:of|the|de|and|von|van|la|du)?\s*[A-Z][\w'\-]*)*")
YEAR = re.compile(r"^(1\d{3}|20\d{2})s?$")
# Capitalized words that start clauses rather than name things.
NOT_NAMES = frozenset(
    "The A An This That These Those It Its They Their He His She Her We I In On At By For From With As But And Or "
    "If When While After Before During Although Since There Here However Some Many Most All Other".split()
)
SHORTEST_SENTENCE, LONGEST_SENTENCE = 30, 40  # characters, words: long ones would crowd the context out


def sentence_bounds(paragraph: str) -> Iterator[tuple[int, int]]:
    """(first, last) character offsets of each sentence of ``paragraph``."""
    start = 0
    for match in SENTENCE_END.finditer(paragraph):
        yield start, match.start()
        start = match.end()
    yield start, len(paragraph)


def answer_candidates(paragraph: str, first: int, last: int) -> Iterator[tuple[int, str, str]]:
    """(offset, span, question word) of the numbers, then the names, in the sentence ``paragraph[first:last]``."""
    sentence = paragraph[first:last]
    for match in NUMBER.finditer(sentence):
        span = match.group().rstrip(",.")
        if span:
            word = "when" if YEAR.match(span) else "what percentage" if span.endswith("%") else "how many"
            yield first + match.start(), span, word
    for match in NAME.finditer(sentence):
        if match.start() == 0 and " " not in match.group():  # one capitalized word that only starts the sentence
            continue
        name = re.sub(r"'s$", "", match.group())
        if name.split()[0] not in NOT_NAMES:
            yield first + match.start(), name, "what"


def cloze_text(paragraph: str, sentence: tuple[int, int], start: int, span: str, word: str, rng, drop: float) -> str:
    """The question: ``word``, then the sentence without ``span`` and without a ``drop`` share of its words."""
    before = paragraph[sentence[0] : start].split()
    after = paragraph[start + len(span) : sentence[1]].rstrip(".!? ").split()
    return f"{word} {' '.join(w for w in before + after if rng.random() >= drop)}?"


def cloze_questions(questions: list[SquadQuestion], per_paragraph: int, seed: int, drop: float = 0.1):
    """Up to ``per_paragraph`` cloze questions (``SquadQuestion``) from each distinct paragraph of ``questions``,
    drawn with ``seed``: the same questions and seed give the same list."""
    rng = random.Random(seed)
    paragraphs: dict[str, str] = {}
    for question in questions:
        paragraphs.setdefault(question.context, question.title)
    made = []
    for number, (paragraph, title) in enumerate(paragraphs.items()):
        options = []
        for sentence in sentence_bounds(paragraph):
            words = len(paragraph[sentence[0] : sentence[1]].split())
            if sentence[1] - sentence[0] >= SHORTEST_SENTENCE and words <= LONGEST_SENTENCE:
                options += [(sentence, *candidate) for candidate in answer_candidates(paragraph, *sentence)]
        rng.shuffle(options)
        for k, (sentence, start, span, word) in enumerate(options[:per_paragraph]):
            text = cloze_text(paragraph, sentence, start, span, word, rng, drop)
            made.append(SquadQuestion(f"cloze-{number}-{k}", text, paragraph, (span,), title, (start,)))
    return made
