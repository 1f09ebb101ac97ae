"""Comparing tf-qa's answers with ``transformers.pipeline("question-answering")`` on the same checkpoint.

A case is one (question, context, top_k, handle_impossible_answer). It is

* ``identical``: for every answer the pipeline returns with a score above 0, ours at the same rank has the
  same text, start and end, and a score within ``SCORE_TOLERANCE``;
* ``tie``: it differs, but the pipeline's own scores of the two differing spans are within
  ``SCORE_TOLERANCE`` (a float tie that either side may break);
* ``differs``: anything else.

Answers the pipeline returns with score 0 (artifacts of its [CLS] handling when a window has fewer valid spans
than candidates asked for) are counted as ``zero_artifacts`` and not compared.
"""

from __future__ import annotations

import dataclasses

SCORE_TOLERANCE = 1e-4
REQUIRED_AGREEMENT = 0.995
#: One summary line per compared set, printed at the end of the pytest run (see conftest.py).
SUMMARIES: list[str] = []


@dataclasses.dataclass
class ParityCounts:
    identical: int = 0
    tie: int = 0
    differs: int = 0
    zero_artifacts: int = 0
    examples: list = dataclasses.field(default_factory=list)

    @property
    def total(self) -> int:
        return self.identical + self.tie + self.differs

    @property
    def agreement(self) -> float:
        return (self.identical + self.tie) / max(self.total, 1)

    def summary(self, name: str) -> str:
        """A line with the counts; also kept for the end-of-run report."""
        line = (
            f"{name}: {self.total} cases, {self.identical} identical, {self.tie} float ties, "
            f"{self.differs} differ ({100 * self.agreement:.2f}% agree); "
            f"{self.zero_artifacts} pipeline score-0 artifacts not compared"
        )
        if line not in SUMMARIES:
            SUMMARIES.append(line)
        return line


def forward_once(pipe):
    """Makes ``pipe`` run each example's preprocessing and model once, then only its postprocessing per setting.

    The parity sets ask the pipeline for every example under four settings (top_k, handle_impossible_answer),
    which change only the pipeline's ``postprocess``; its answers stay its own (its code on its own model
    outputs, which ``postprocess`` reads and never changes).
    """
    outputs_by_example = {}

    def run_single(inputs, preprocess_params, forward_params, postprocess_params):
        key = (inputs.question_text, inputs.context_text, tuple(sorted(preprocess_params.items())))
        if key not in outputs_by_example:
            outputs_by_example[key] = [
                pipe.forward(features, **forward_params) for features in pipe.preprocess(inputs, **preprocess_params)
            ]
        return pipe.postprocess(outputs_by_example[key], **postprocess_params)

    pipe.run_single = run_single
    return pipe


def as_list(result) -> list[dict]:
    return result if isinstance(result, list) else [result]


def in_batches(answer_batch, batch_size: int):
    """An ``answer_fn`` for ``compare``: ``answer_batch`` is a ``tf_qa.signatures.Answerer``'s (the client's, an
    in-process answerer's), asked ``batch_size`` cases at a time."""

    def answer_fn(questions, contexts, *, top_k, handle_impossible_answer):
        results = []
        for begin in range(0, len(questions), batch_size):
            batch = answer_batch(
                questions[begin : begin + batch_size],
                contexts[begin : begin + batch_size],
                top_k=top_k,
                handle_impossible_answer=handle_impossible_answer,
            )
            results.extend(as_list(result) for result in batch)
        return results

    return answer_fn


def _same(a: dict, b: dict) -> bool:
    return (a["answer"], a["start"], a["end"]) == (b["answer"], b["start"], b["end"]) and abs(
        a["score"] - b["score"]
    ) <= SCORE_TOLERANCE


def compare(pipe, answer_fn, questions, contexts, *, top_k, handle_impossible_answer) -> ParityCounts:
    """Counts identical, tied and differing cases over all pairs.

    ``answer_fn(questions, contexts, top_k=, handle_impossible_answer=)`` returns tf-qa's answers: per case a
    list of ``{"answer", "score", "start", "end"}`` without padding (``in_batches``).
    """
    ours_all = answer_fn(questions, contexts, top_k=top_k, handle_impossible_answer=handle_impossible_answer)
    counts = ParityCounts()
    for question, context, ours in zip(questions, contexts, ours_all):
        theirs = as_list(
            pipe(question=question, context=context, top_k=top_k, handle_impossible_answer=handle_impossible_answer)
        )
        compared = [(rank, t) for rank, t in enumerate(theirs) if t["score"] > 0.0]
        counts.zero_artifacts += len(theirs) - len(compared)
        mismatched = [(rank, t) for rank, t in compared if rank >= len(ours) or not _same(ours[rank], t)]
        if not mismatched:
            counts.identical += 1
            continue
        # A float tie: the pipeline scores our span (asked for more candidates) within tolerance of its own.
        wider = as_list(
            pipe(
                question=question, context=context, top_k=top_k + 10, handle_impossible_answer=handle_impossible_answer
            )
        )

        def pipeline_score(answer, wider=wider):
            for candidate in wider:
                if (candidate["start"], candidate["end"]) == (answer["start"], answer["end"]):
                    return candidate["score"]
            return None

        tied = all(
            rank < len(ours)
            and (score := pipeline_score(ours[rank])) is not None
            and abs(score - t["score"]) <= SCORE_TOLERANCE
            for rank, t in mismatched
        )
        if tied:
            counts.tie += 1
        else:
            counts.differs += 1
            counts.examples.append({"question": question, "context": context[:200], "ours": ours, "pipeline": theirs})
    return counts
