"""The calibration of an int8 export: each int8 product's input range and outlier channels, on given questions.

``tf-qa export --matmul-dtype int8 --calibration FILE`` reads FILE as ``tf_qa.questions`` reads a question file
(SQuAD ``.json``, JSON Lines ``.jsonl``, or TF Serving request logs: calibrate on the traffic the model serves)
and takes a seeded sample of ``--calibration-questions`` of them (``tf_qa.questions.calibration_questions``);
``--demo`` without a file calibrates on the demo model's training articles
(``tf_qa.questions.demo_calibration_questions``). The bfloat16 layer with the export's ``parallel_branches`` runs
eagerly on each question's windows (cut as the export cuts them); each product's range is the minimum and
maximum of its input over them, its outlier channels divided into it (``tf_qa.graph.int8``), recorded in the
export (``int8_ranges`` and ``int8_channel_divisors`` of its options) with what it was calibrated on.

Example:

>>> from tf_qa.questions import calibration_questions
>>> questions = calibration_questions("../shared/data/squad/squad-v1.1-dev-part1.json", 64)  # doctest: +SKIP
>>> options = calibrated_options(qa_model, tokenizer, ExportOptions(matmul_dtype="int8"), questions)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tf_qa.graph.options import ExportOptions


@dataclasses.dataclass(frozen=True)
class CalibrationSet:
    """The questions (``SquadQuestion``) an int8 export calibrates on, and where they came from."""

    questions: tuple
    source: str

    def describe(self) -> str:
        return f"{len(self.questions)} questions of {self.source}"


def calibrated_options(qa_model, tokenizer, options: ExportOptions, calibration: CalibrationSet) -> ExportOptions:
    """``options`` (int8, ``max_seq_len`` set) with the int8 ranges and outlier channels' divisors measured on
    ``calibration``'s windows."""
    from tf_qa.graph.distilbert import DistilBertSpanLogits

    bf16 = DistilBertSpanLogits(qa_model, matmul_dtype="bfloat16", parallel_branches=options.parallel_branches)
    ranges, divisors = bf16.int8_calibration(_windows(tokenizer, options, calibration.questions))
    return dataclasses.replace(options, int8_ranges=ranges, int8_channel_divisors=divisors)


def _windows(tokenizer, options: ExportOptions, questions):
    """Each question's windows as the export cuts them: (input_ids, attention_mask) int32 arrays.

    Raises:
        ValueError: naming a question that leaves no room for its context in a window (the export refuses it too).
    """
    for question in questions:
        try:
            windows = tokenizer(
                question.question,
                question.context,
                truncation="only_second",
                max_length=options.max_seq_len,
                stride=options.doc_stride,
                return_overflowing_tokens=True,
                return_tensors="np",
                padding=True,
            )
        except Exception as error:  # noqa: BLE001  the Rust tokenizer raises a bare Exception for a long question
            raise ValueError(
                f"calibration question {question.id!r} cannot be cut into windows of {options.max_seq_len} tokens "
                f"({error}): a question too long for the export; leave it out of the calibration file"
            ) from None
        yield windows["input_ids"].astype(np.int32), windows["attention_mask"].astype(np.int32)
