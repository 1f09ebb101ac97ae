"""The question files tf-qa reads (``tf-qa compare``, ``tf-qa batch``): SQuAD, JSON Lines, and TF Serving request
logs (``PredictionLog`` TFRecord files, as ``tf-qa serve`` writes them: a file, or a prefix of rotated files).

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

from tf_qa import squad
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
