"""``tf-qa compare``: the canary check. The same questions asked of two versions, labels, targets or exports; their
answers compared, scored and timed, so that a rollout script can gate a label move on it.

A side is ``label:NAME`` or ``version:N`` (of the model at ``--target``), ``HOST:PORT`` (its newest version) or a
SavedModel folder (in-process). Questions come from ``tf_qa.questions``: a SQuAD file (gold answers: EM/F1 of each
side), JSON Lines or TF Serving request logs.

Example:

>>> parse_side("label:stable", "localhost:8500", "qa")
Side(text='label:stable', target='localhost:8500', model_name='qa', version=None, label='stable', saved_model=None)
>>> parse_side("10.0.0.7:8500", "localhost:8500", "qa").target
'10.0.0.7:8500'
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from tf_qa import squad
from tf_qa.signatures import Answerer
from tf_qa.squad import SquadQuestion


@dataclasses.dataclass(frozen=True)
class Side:
    """One side of a comparison: a target, its model and a version or label, or a SavedModel folder."""

    text: str
    target: str | None = None
    model_name: str | None = None
    version: int | None = None
    label: str | None = None
    saved_model: str | None = None


def parse_side(text: str, target: str | None, model_name: str | None) -> Side:
    """``label:NAME``, ``version:N``, ``HOST:PORT`` or a SavedModel folder; ValueError saying which forms exist,
    or what a side on a server lacks (``target`` for a label or version, ``model_name``)."""
    kind, _, value = text.partition(":")
    if os.path.isdir(text):
        return Side(text, saved_model=text)
    if kind == "label" and value:
        served = {"target": _needs_target(text, target), "label": value}
    elif kind == "version" and value.isdigit():
        served = {"target": _needs_target(text, target), "version": int(value)}
    elif value.isdigit():
        served = {"target": text}
    else:
        raise ValueError(f"{text!r} is not label:NAME, version:N, HOST:PORT or a SavedModel folder")
    if not model_name:
        raise ValueError(f"{text} needs --model-name")
    return Side(text, model_name=model_name, **served)


def _needs_target(text: str, target: str | None) -> str:
    if not target:
        raise ValueError(f"{text} needs --target (the server whose {text.partition(':')[0]} it names)")
    return target


def answerer_for(side: Side, timeout: float) -> Answerer:
    if side.saved_model:
        from tf_qa.saved_model.answerer import SavedModelAnswerer

        return SavedModelAnswerer(side.saved_model)
    from tf_qa.client import QAClient

    return QAClient(side.target, side.model_name, version=side.version, version_label=side.label, timeout=timeout)


@dataclasses.dataclass
class SideResult:
    answers: dict[str, str] = dataclasses.field(default_factory=dict)
    seconds: list[float] = dataclasses.field(default_factory=list)

    def latency_ms(self, quantile: float) -> float:
        return float(np.quantile(self.seconds, quantile) * 1000) if self.seconds else float("nan")


def ask_both(questions: list[SquadQuestion], baseline: Answerer, candidate: Answerer, batch_size: int, progress=None):
    """Both sides' top answers and request times; the sides take turns, so drift in the machine hits both. Each
    side answers the first question once untimed first (a warm connection, an export's graph traced)."""
    for answerer in (baseline, candidate):
        answerer.answer_batch([questions[0].question], [questions[0].context])
    results = (SideResult(), SideResult())
    for begin in range(0, len(questions), batch_size):
        batch = questions[begin : begin + batch_size]
        order = ((baseline, results[0]), (candidate, results[1]))
        for answerer, result in order if (begin // batch_size) % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            answers = answerer.answer_batch([q.question for q in batch], [q.context for q in batch])
            result.seconds.append(time.perf_counter() - started)
            result.answers.update({q.id: answer["answer"] if answer else "" for q, answer in zip(batch, answers)})
        if progress:
            progress.update(len(batch))
    return results


def report(questions: list[SquadQuestion], baseline: SideResult, candidate: SideResult) -> dict:
    """Agreement, EM/F1 of each side (questions with gold answers), latency, the questions whose answers changed."""
    changed = [q for q in questions if baseline.answers[q.id] != candidate.answers[q.id]]
    gold = [q for q in questions if q.answers]
    result = {
        "questions": len(questions),
        "agreement": 1 - len(changed) / len(questions),
        "changed": [
            {
                "id": q.id,
                "question": q.question,
                "baseline": baseline.answers[q.id],
                "candidate": candidate.answers[q.id],
            }
            for q in changed
        ],
    }
    for name, side in (("baseline", baseline), ("candidate", candidate)):
        result[name] = {"p50_ms": side.latency_ms(0.5), "p99_ms": side.latency_ms(0.99), "requests": len(side.seconds)}
        if gold:
            result[name].update(squad.evaluate(gold, side.answers))
    return result


def verdict(result: dict, min_agreement: float, max_f1_drop: float | None) -> list[str]:
    """What fails the gate (empty: it passes)."""
    failures = []
    if result["agreement"] < min_agreement:
        failures.append(f"agreement {result['agreement']:.2%} is under --min-agreement {min_agreement:.2%}")
    if max_f1_drop is not None and "f1" in result["baseline"]:
        drop = result["baseline"]["f1"] - result["candidate"]["f1"]
        if drop > max_f1_drop:
            failures.append(f"F1 drops {drop:.2f} points, more than --max-f1-drop {max_f1_drop:g}")
    return failures
