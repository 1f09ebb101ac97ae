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
from typing import Any

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from tf_qa.defaults import DEFAULT_MAX_ANSWER_LEN, TOP_K_SIGNATURE
from tf_qa.errors import graph_error_message
from tf_qa.signatures import answers_from_arrays

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


class _AnswerHandler(ModelHandler[Question, PredictionResult, Any]):
    """What both handlers share: batching, and answering a refused batch one question at a time."""

    def batch_elements_kwargs(self):
        return BATCH_SIZES

    def run_inference(self, batch: Sequence[Question], model, inference_args=None) -> Iterable[PredictionResult]:
        try:
            answers = self._answer(model, list(batch))
        except ValueError:
            if len(batch) == 1:
                raise
            answers = [self._answer_alone(model, question) for question in batch]
        return [PredictionResult(question, answer) for question, answer in zip(batch, answers)]

    def _answer_alone(self, model, question: Question):
        try:
            return self._answer(model, [question])[0]
        except ValueError as error:
            return {"error": str(error)}

    def _answer(self, model, batch: list[Question]) -> list:
        """The answers of a batch; ValueError with the model's message when it refuses the batch."""
        raise NotImplementedError


class SavedModelHandler(_AnswerHandler):
    """Answers with the SavedModel at ``version_dir``, loaded in each worker."""

    def __init__(self, version_dir: str):
        self.version_dir = str(version_dir)

    def load_model(self):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  registers the TF Text op the graph uses

        return tf.saved_model.load(self.version_dir)

    def _answer(self, model, batch: list[Question]) -> list:
        import tensorflow as tf

        inputs = {
            "question": tf.constant([q.question for q in batch]),
            "context": tf.constant([q.context for q in batch]),
            "top_k": tf.constant([q.top_k for q in batch], tf.int32),
            "max_answer_len": tf.constant([q.max_answer_len for q in batch], tf.int32),
            "handle_impossible_answer": tf.constant([q.handle_impossible_answer for q in batch]),
        }
        try:
            out = model.signatures[TOP_K_SIGNATURE](**inputs)
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(graph_error_message(error.message)) from None
        return answers_from_arrays({k: v.numpy() for k, v in out.items()}, [q.top_k for q in batch])


class ServingHandler(_AnswerHandler):
    """Answers through a TF Serving target (``host:port``, or several) with ``tf_qa.client.QAClient``."""

    def __init__(self, target: str, model_name: str, *, timeout: float = 60.0, retries: int = 3):
        self.target, self.model_name, self.timeout, self.retries = target, model_name, timeout, retries

    def load_model(self):
        from tf_qa.client import QAClient

        return QAClient(self.target, self.model_name, timeout=self.timeout, retries=self.retries)

    def _answer(self, model, batch: list[Question]) -> list:
        from tf_qa.errors import InvalidRequest

        answers = [None] * len(batch)
        # One request per set of options: the client sends one setting for a whole request.
        groups: dict[tuple, list[int]] = {}
        for index, q in enumerate(batch):
            groups.setdefault((q.top_k, q.max_answer_len, q.handle_impossible_answer), []).append(index)
        for (top_k, max_answer_len, handle), indices in groups.items():
            try:
                results = model.answer_batch(
                    [batch[i].question for i in indices],
                    [batch[i].context for i in indices],
                    top_k=top_k,
                    max_answer_len=max_answer_len,
                    handle_impossible_answer=handle,
                )
            except InvalidRequest as error:
                raise ValueError(str(error)) from None
            for index, result in zip(indices, results):
                answers[index] = result
        return answers
