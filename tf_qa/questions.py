"""The question files tf-qa reads (``tf-qa compare``, ``tf-qa batch``, ``tf-qa export --calibration``): SQuAD, JSON
Lines, and TF Serving request logs (``PredictionLog`` TFRecord files, as ``tf-qa serve`` writes them: a file, or a
prefix of rotated files); the seeded samples an int8 export calibrates on.

Example:

>>> from tf_qa.squad import SQUAD_V1_PART
>>> questions = read_questions(str(SQUAD_V1_PART))                                       # doctest: +SKIP
>>> questions[0].id, bool(questions[0].answers)                                           # doctest: +SKIP
('56be4db0acb8001400a502ec', True)
"""

from __future__ import annotations

import glob
import json
import os
import random

from tf_qa import squad
from tf_qa.defaults import DEFAULT_CALIBRATION_QUESTIONS
from tf_qa.saved_model.calibration import CalibrationSet
from tf_qa.squad import SquadQuestion


def read_questions(path: str) -> list[SquadQuestion]:
    """The questions of a SQuAD file (``.json``), JSON Lines (``.jsonl``) or request logs (anything else)."""
    if path.endswith(".json"):
        return squad.load_squad(path)
    if path.endswith(".jsonl"):
        return json_lines(path)
    return request_log_questions(path)


def json_lines(path: str) -> list[SquadQuestion]:
    questions = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                answers = tuple(record.get("answers", ()))
                questions.append(SquadQuestion(str(record["id"]), record["question"], record["context"], answers))
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{path} line {number}: not a {{id, question, context}} record ({error})") from None
    return questions


def request_log_questions(path: str) -> list[SquadQuestion]:
    """Each logged request's questions (``answer_top_k`` or ``serving_default``), ids ``FILE:RECORD:ROW``."""
    from tf_qa.saved_model.warmup import read_prediction_logs
    from tf_qa.tensors import make_ndarray

    files = [path] if os.path.isfile(path) else sorted(glob.glob(f"{glob.escape(path)}-*"))
    if not files:
        raise ValueError(f"no request log at {path} (a file, or the filename_prefix of rotated files)")
    questions = []
    for file in files:
        for number, log in enumerate(read_prediction_logs(file)):
            inputs = log.predict_log.request.inputs
            if "question" not in inputs or "context" not in inputs:
                continue  # token_spans requests carry no text
            texts = zip(make_ndarray(inputs["question"]), make_ndarray(inputs["context"]))
            for row, (question, context) in enumerate(texts):
                name = f"{os.path.basename(file)}:{number}:{row}"
                questions.append(SquadQuestion(name, question.decode("utf-8"), context.decode("utf-8"), ()))
    return questions


def calibration_questions(path: str, count: int = DEFAULT_CALIBRATION_QUESTIONS) -> CalibrationSet:
    """A seeded sample of ``count`` questions of a question file (all of them when it has fewer).

    Raises:
        ValueError: the file cannot be read as a question file, or has no question with a context.
    """
    try:
        questions = [q for q in read_questions(path) if q.context.strip()]
    except OSError as error:
        raise ValueError(f"--calibration: cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise ValueError(f"--calibration: {error}") from None
    if not questions:
        raise ValueError(f"--calibration: {path} has no question with a context")
    return CalibrationSet(tuple(_sample(questions, count)), path)


def demo_calibration_questions(count: int = DEFAULT_CALIBRATION_QUESTIONS) -> CalibrationSet:
    """The trained demo model's calibration: a seeded sample of its training articles' questions (SQuAD v1.1 dev
    part 1 without the held-out articles). Raises ``ValueError`` where that file is absent."""
    from tf_qa.checkpoints import HELD_OUT_TITLES
    from tf_qa.squad import SQUAD_V1_PART, load_squad

    if not SQUAD_V1_PART.exists():
        raise ValueError(
            f"the demo model calibrates on its training articles, in {SQUAD_V1_PART}, absent here: "
            "give --calibration FILE (SQuAD .json, .jsonl, or a request log)"
        )
    training = [q for q in load_squad(SQUAD_V1_PART) if q.title not in HELD_OUT_TITLES]
    return CalibrationSet(tuple(_sample(training, count)), f"{SQUAD_V1_PART.name} (the demo model's training articles)")


def _sample(questions: list, count: int) -> list:
    return random.Random(0).sample(questions, count) if len(questions) > count else questions
