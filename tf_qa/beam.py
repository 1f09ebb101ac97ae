"""Batch question answering on Apache Beam: ``RunInference`` over keyed questions (``pip install -e '.[beam]'``).

Two model handlers, batched by Beam (8 to 16 questions a call):

* ``SavedModelHandler``: the exported SavedModel, loaded once per worker (TF Text's ops registered);
* ``ServingHandler``: a running TF Serving (or ``tf-qa serve``) target, through ``tf_qa.client`` with its
  deadline and retries.

Elements are ``(key, Question)``; results are ``(key, PredictionResult(question, answer))`` where the answer is
the pipeline's result (a dict, or a list when ``top_k`` > 1), or ``{"error": message}`` for a question the model
refused (a batch the model refuses is answered again one question at a time, so one bad question fails alone).

Example:

>>> import apache_beam as beam                                                  # doctest: +SKIP
>>> from apache_beam.ml.inference.base import KeyedModelHandler, RunInference   # doctest: +SKIP
>>> with beam.Pipeline() as pipeline:                                           # doctest: +SKIP
...     _ = (pipeline | beam.Create([("q1", Question("Who?", "Ada wrote it."))])
...          | RunInference(KeyedModelHandler(SavedModelHandler("export/NAME/1"))) | beam.Map(print))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from tf_qa.defaults import DEFAULT_MAX_ANSWER_LEN
from tf_qa.errors import InvalidRequest
from tf_qa.signatures import Answerer

#: Questions per model call: the batch size the SavedModel answers fastest at on CPU (see benchmarks/).
BATCH_SIZES = {"min_batch_size": 8, "max_batch_size": 16}


@dataclasses.dataclass(frozen=True)
class Question:
    """One question over its context, with the pipeline's per-example options."""

    question: str
    context: str
    top_k: int = 1
    max_answer_len: int = DEFAULT_MAX_ANSWER_LEN
    handle_impossible_answer: bool = False


class _AnswerHandler(ModelHandler[Question, PredictionResult, Answerer]):
    """What both handlers share: batching, the questions asked through the model's ``Answerer``, and a refused
    batch answered again one question at a time."""

    def batch_elements_kwargs(self):
        return BATCH_SIZES

    def run_inference(self, batch: Sequence[Question], model, inference_args=None) -> Iterable[PredictionResult]:
        try:
            answers = self._answer(model, list(batch))
        except InvalidRequest:
            if len(batch) == 1:
                raise
            answers = [self._answer_alone(model, question) for question in batch]
        return [PredictionResult(question, answer) for question, answer in zip(batch, answers)]

    def _answer_alone(self, model: Answerer, question: Question):
        try:
            return self._answer(model, [question])[0]
        except InvalidRequest as error:
            return {"error": str(error)}

    @staticmethod
    def _answer(model: Answerer, batch: list[Question]) -> list:
        """The answers of a batch; ``InvalidRequest`` naming the problem when the model refuses it."""
        return model.answer_batch(
            [q.question for q in batch],
            [q.context for q in batch],
            top_k=[q.top_k for q in batch],
            max_answer_len=[q.max_answer_len for q in batch],
            handle_impossible_answer=[q.handle_impossible_answer for q in batch],
        )


class SavedModelHandler(_AnswerHandler):
    """Answers with the SavedModel at ``version_dir``, loaded in each worker."""

    def __init__(self, version_dir: str):
        self.version_dir = str(version_dir)

    def load_model(self) -> Answerer:
        from tf_qa.saved_model.answerer import SavedModelAnswerer

        return SavedModelAnswerer(self.version_dir)


class ServingHandler(_AnswerHandler):
    """Answers through a TF Serving target (``host:port``, or several) with ``tf_qa.client.QAClient``."""

    def __init__(self, target: str, model_name: str, *, timeout: float = 60.0, retries: int = 3):
        self.target, self.model_name, self.timeout, self.retries = target, model_name, timeout, retries

    def load_model(self) -> Answerer:
        from tf_qa.client import QAClient

        return QAClient(self.target, self.model_name, timeout=self.timeout, retries=self.retries)
