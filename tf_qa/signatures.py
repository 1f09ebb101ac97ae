"""The ``answer_top_k`` signature's contract, without TensorFlow: its inputs as numpy arrays, its outputs as answers.

Every runtime takes the same arrays (the SavedModel in-process, TensorFlow's C++ runtime, a PredictRequest to TF
Serving) and gives back [B, K] arrays that ``answers_from_arrays`` turns into the pipeline's results.

Example:

>>> inputs = answer_top_k_inputs(["Who?"], ["Ann did."], top_k=2)
>>> {name: (array.dtype.name, array.shape) for name, array in inputs.items()}["top_k"]
('int32', (1,))
>>> out = {"answer": np.array([[b"Ann", b""]]), "score": np.array([[0.9, 0.0]]),
...        "start": np.array([[0, -1]]), "end": np.array([[3, -1]])}
>>> answers_from_arrays(out, [2])
[[{'answer': 'Ann', 'score': 0.9, 'start': 0, 'end': 3}]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tf_qa.defaults import DEFAULT_MAX_ANSWER_LEN


def _utf8(texts) -> np.ndarray:
    return np.array([t.encode("utf-8") if isinstance(t, str) else bytes(t) for t in texts], dtype=object)


def answer_top_k_inputs(
    questions: Sequence[str | bytes],
    contexts: Sequence[str | bytes],
    *,
    top_k: int = 1,
    max_answer_len: int = DEFAULT_MAX_ANSWER_LEN,
    handle_impossible_answer: bool = False,
) -> dict[str, np.ndarray]:
    """``answer_top_k``'s inputs, each of shape [B], one setting for every example; ``ValueError`` if B is 0 or
    the questions and contexts differ in number."""
    if len(questions) != len(contexts):
        raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
    if not questions:
        raise ValueError("at least one question is required")
    n = len(questions)
    return {
        "question": _utf8(questions),
        "context": _utf8(contexts),
        "top_k": np.full([n], top_k, np.int32),
        "max_answer_len": np.full([n], max_answer_len, np.int32),
        "handle_impossible_answer": np.full([n], handle_impossible_answer, bool),
    }


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
