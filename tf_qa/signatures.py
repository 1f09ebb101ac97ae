"""The serving signatures' contract, without TensorFlow: names, dtypes and shapes, requests and answers.

Every runtime takes the same numpy arrays (the SavedModel in-process, TensorFlow's C++ runtime, a PredictRequest
to TF Serving) and gives back arrays that ``answers_from_arrays`` turns into the pipeline's results. The graph
(``tf_qa.graph.model``) traces its signatures from ``SIGNATURES``; ``tf-qa validate`` checks an export against it.
Anything that answers questions follows ``Answerer`` (``tf_qa.client.QAClient`` over gRPC,
``tf_qa.saved_model.answerer`` in-process and in the C++ runtime).

Example:

>>> inputs = answer_top_k_inputs(["Who?"], ["Ann did."], top_k=2)
>>> {name: (array.dtype.name, array.shape) for name, array in inputs.items()}["top_k"]
('int32', (1,))
>>> SIGNATURES["answer_top_k"].outputs["start"]
TensorSpec(dtype='int64', shape=(None, None))
>>> out = {"answer": np.array([[b"Ann", b""]]), "score": np.array([[0.9, 0.0]]),
...        "start": np.array([[0, -1]]), "end": np.array([[3, -1]])}
>>> answers_from_arrays(out, [2])
[[{'answer': 'Ann', 'score': 0.9, 'start': 0, 'end': 3}]]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from tf_qa import protos
from tf_qa.defaults import DEFAULT_MAX_ANSWER_LEN
from tf_qa.tensors import make_tensor_proto

SERVING_DEFAULT = "serving_default"
TOP_K_SIGNATURE = "answer_top_k"
TOKEN_SPANS_SIGNATURE = "token_spans"


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One input or output: TensorFlow's dtype name and the shape, ``None`` for a size the request decides."""

    dtype: str
    shape: tuple[int | None, ...]


@dataclasses.dataclass(frozen=True)
class Signature:
    name: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]


_TEXT, _ROW, _SCORE = TensorSpec("string", (None,)), TensorSpec("int32", (None,)), TensorSpec("float32", (None,))
_IDS = TensorSpec("int32", (None, None))
_ANSWER = {"answer": "string", "score": "float32", "start": "int64", "end": "int64"}
#: Each example's windows through the model ([B]): what its answer cost.
_WINDOWS = {"windows": TensorSpec("int32", (None,))}

SIGNATURES: dict[str, Signature] = {
    s.name: s
    for s in (
        # Top-1 answers with the export's max_answer_len and handle_impossible_answer.
        Signature(
            SERVING_DEFAULT,
            inputs={"question": _TEXT, "context": _TEXT},
            outputs={**{name: TensorSpec(dtype, (None,)) for name, dtype in _ANSWER.items()}, **_WINDOWS},
        ),
        # The pipeline's options per example; [B, K] answers with K the batch's largest top_k.
        Signature(
            TOP_K_SIGNATURE,
            inputs={
                "question": _TEXT,
                "context": _TEXT,
                "top_k": _ROW,
                "max_answer_len": _ROW,
                "handle_impossible_answer": TensorSpec("bool", (None,)),
            },
            outputs={**{name: TensorSpec(dtype, (None, None)) for name, dtype in _ANSWER.items()}, **_WINDOWS},
        ),
        # Windows the caller tokenized, padded with 0: the best span of each.
        Signature(
            TOKEN_SPANS_SIGNATURE,
            inputs={"input_ids": _IDS, "attention_mask": _IDS},
            outputs={"start": TensorSpec("int64", (None,)), "end": TensorSpec("int64", (None,)), "score": _SCORE},
        ),
    )
}


def _utf8(texts) -> np.ndarray:
    return np.array([t.encode("utf-8") if isinstance(t, str) else bytes(t) for t in texts], dtype=object)


def _per_example(value, n: int, dtype) -> np.ndarray:
    """One setting for every example, or one per example."""
    array = np.asarray(value, dtype)
    if array.ndim == 0:
        return np.full([n], array, dtype)
    if array.shape != (n,):
        raise ValueError(f"{array.shape[0]} settings for {n} questions")
    return array


def answer_top_k_inputs(
    questions: Sequence[str | bytes],
    contexts: Sequence[str | bytes],
    *,
    top_k: int | Sequence[int] = 1,
    max_answer_len: int | Sequence[int] = DEFAULT_MAX_ANSWER_LEN,
    handle_impossible_answer: bool | Sequence[bool] = False,
) -> dict[str, np.ndarray]:
    """``answer_top_k``'s inputs, each of shape [B]; a setting is one value for every example or one per example.
    ``ValueError`` if B is 0 or the questions, contexts and settings differ in number."""
    if len(questions) != len(contexts):
        raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
    if not questions:
        raise ValueError("at least one question is required")
    n = len(questions)
    return {
        "question": _utf8(questions),
        "context": _utf8(contexts),
        "top_k": _per_example(top_k, n, np.int32),
        "max_answer_len": _per_example(max_answer_len, n, np.int32),
        "handle_impossible_answer": _per_example(handle_impossible_answer, n, bool),
    }


def serving_default_inputs(questions: Sequence[str | bytes], contexts: Sequence[str | bytes]) -> dict[str, np.ndarray]:
    """``serving_default``'s inputs, each of shape [B]."""
    inputs = answer_top_k_inputs(questions, contexts)
    return {name: inputs[name] for name in SIGNATURES[SERVING_DEFAULT].inputs}


def token_spans_inputs(input_ids, attention_mask) -> dict[str, np.ndarray]:
    """``token_spans``' inputs, each [B, L] int32."""
    return {"input_ids": np.asarray(input_ids, np.int32), "attention_mask": np.asarray(attention_mask, np.int32)}


def model_spec(spec, model_name: str, version: int | None = None, version_label: str | None = None) -> None:
    """Fills a ModelSpec: the model, and a version or a version label (neither: the newest version)."""
    if version is not None and version_label is not None:
        raise ValueError("give version or version_label, not both")
    spec.name = model_name
    if version is not None:
        spec.version.value = version
    if version_label is not None:
        spec.version_label = version_label


def predict_request(signature_name: str, inputs: dict[str, np.ndarray], model_name: str, **version):
    """A PredictRequest (``tf_qa.protos``) for the signature; ``version`` as in ``model_spec``. TensorFlow
    Serving's own classes read it back from its bytes."""
    request = protos.PredictRequest()
    model_spec(request.model_spec, model_name, **version)
    request.model_spec.signature_name = signature_name
    for name, array in inputs.items():
        request.inputs[name].CopyFrom(make_tensor_proto(array))
    return request


def answers_from_arrays(out: dict, top_ks: Sequence[int]) -> list:
    """``answer_top_k``'s [B, K] outputs (numpy) as the pipeline's results: per example a dict, or a list of them
    when its ``top_k`` > 1 (padding left out)."""
    results = []
    for row, top_k in enumerate(top_ks):
        answers = [
            {
                "answer": out["answer"][row, rank].decode("utf-8"),
                "score": float(out["score"][row, rank]),
                "start": int(out["start"][row, rank]),
                "end": int(out["end"][row, rank]),
            }
            for rank in range(min(top_k, out["answer"].shape[1]))
            if out["start"][row, rank] != -1
        ]
        results.append(answers[0] if top_k == 1 and answers else answers)
    return results


class Answerer(Protocol):
    """What answers questions, wherever the model runs; every caller (the command line, Beam, the tests, the
    benchmarks) takes one. A question the model refuses raises ``tf_qa.errors.InvalidRequest`` naming it."""

    def answer_batch(self, questions: Sequence[str], contexts: Sequence[str], **settings) -> list:
        """The pipeline's result per question (a dict, or a list of dicts where ``top_k`` > 1); ``settings`` are
        ``answer_top_k_inputs``' (``top_k``, ``max_answer_len``, ``handle_impossible_answer``)."""

    def close(self) -> None: ...
