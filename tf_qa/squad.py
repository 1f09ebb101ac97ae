"""SQuAD data and the official evaluation's exact match and F1 (v1.1, and v2.0 with unanswerable questions).

The metric follows the official scripts: answers are normalized (lower-cased, punctuation and the articles
a/an/the removed, whitespace collapsed), F1 is over normalized tokens, and each prediction takes the best score
over the gold answers. A SQuAD v2.0 question without gold answers counts as correct only for the empty answer.

Example:

>>> exact_match("The Eiffel Tower!", ["eiffel tower"]), round(f1("in Paris", ["Paris, France"]), 3)
(1.0, 0.5)
"""

from __future__ import annotations

import collections
import json
import os
import re
import string
from dataclasses import dataclass
from pathlib import Path

from grpc import StatusCode

from tf_qa.errors import TFQAError

#: Where this workplace keeps parts of SQuAD dev (beside the checkout, never committed); TF_QA_SQUAD_DIR moves it.
SQUAD_DIR = Path(os.environ.get("TF_QA_SQUAD_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "squad")
SQUAD_V1_PART = SQUAD_DIR / "squad-v1.1-dev-part1.json"
SQUAD_V2_PART = SQUAD_DIR / "squad-v2.0-dev-part1.json"

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


@dataclass(frozen=True)
class SquadQuestion:
    id: str
    question: str
    context: str
    answers: tuple[str, ...]  # empty for an unanswerable SQuAD v2.0 question
    title: str = ""  # the article's, so that a split by article can be made
    answer_starts: tuple[int, ...] = ()  # character offset of each answer in the context


class SquadFormatError(TFQAError, ValueError):
    """A SQuAD file that cannot be read (NOT_FOUND) or is not SQuAD (INVALID_ARGUMENT); the message names the
    file and what is wrong."""

    code = StatusCode.INVALID_ARGUMENT


def load_squad(path: str | Path) -> list[SquadQuestion]:
    """Every question of a SQuAD-format JSON file, in file order; ``SquadFormatError`` if it is not one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise SquadFormatError(f"cannot read {path}: {error.strerror or error}", code=StatusCode.NOT_FOUND) from None
    except UnicodeDecodeError:
        raise SquadFormatError(f"{path} is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise SquadFormatError(f"{path} is not JSON: {error}") from None
    try:
        questions = []
        for article in data["data"]:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    gold = [] if qa.get("is_impossible") else qa["answers"]
                    answers, starts = tuple(a["text"] for a in gold), tuple(a["answer_start"] for a in gold)
                    questions.append(
                        SquadQuestion(
                            qa["id"], qa["question"], paragraph["context"], answers, article.get("title", ""), starts
                        )
                    )
    except (KeyError, TypeError, AttributeError) as error:
        raise SquadFormatError(
            f"{path} is not in SQuAD format (data / paragraphs / qas): missing or wrong {error}"
        ) from None
    return questions


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation and articles, collapse whitespace (the official normalization)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _f1_one(prediction: str, gold: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = collections.Counter(predicted) & collections.Counter(expected)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold_answers) -> float:
    """1.0 when the normalized prediction equals a normalized gold answer (``[""]`` when there is none)."""
    gold_answers = list(gold_answers) or [""]
    return max(float(normalize_answer(prediction) == normalize_answer(gold)) for gold in gold_answers)


def f1(prediction: str, gold_answers) -> float:
    """Best token-level F1 of the prediction against the gold answers (``[""]`` when there is none)."""
    gold_answers = list(gold_answers) or [""]
    return max(_f1_one(prediction, gold) for gold in gold_answers)


def evaluate(questions: list[SquadQuestion], predictions: dict[str, str]) -> dict[str, float]:
    """Exact match and F1 in percent over ``questions``; a missing prediction counts as wrong."""
    if not questions:
        raise ValueError("no questions to evaluate")
    em = sum(exact_match(predictions.get(q.id, ""), q.answers) if q.id in predictions else 0.0 for q in questions)
    score = sum(f1(predictions.get(q.id, ""), q.answers) if q.id in predictions else 0.0 for q in questions)
    return {"exact_match": 100 * em / len(questions), "f1": 100 * score / len(questions), "total": len(questions)}
