"""``ExportOptions``: what an export fixes in the serving graph, defined and validated once (no TensorFlow here).

The model is built from them, ``tf-qa export`` makes one flag of each field that has a ``help`` (and of each
request limit), and the export's metadata (``tf_qa_export.json``, "options") records them, from which
``ExportOptions.from_dict`` builds them again.

Example:

>>> options = ExportOptions(max_seq_len=256, doc_stride=64)
>>> options.max_answer_len, options.limits.max_windows
(15, 512)
>>> ExportOptions.from_dict(options.as_dict()) == options
True
>>> ExportOptions(max_seq_len=128, doc_stride=128)
Traceback (most recent call last):
...
ValueError: doc_stride (128) must be in [0, max_seq_len=128)
"""

from __future__ import annotations

import dataclasses
import math

from tf_qa.defaults import (
    DEFAULT_DOC_STRIDE,
    DEFAULT_MAX_ANSWER_LEN,
    DEFAULT_MAX_SEQ_LEN,
    DEFAULT_WINDOW_GROUP_SIZE,
    MATMUL_DTYPES,
    MIN_INT8_PARALLEL_BRANCHES,
    PARALLEL_BRANCHES,
    REDUCED_MATMUL_DTYPES,
    WINDOW_LENGTH_MULTIPLES,
)
from tf_qa.graph.limits import RequestLimits


def _option(default, help_text: str | None = None, *, minimum: int | None = None, choices: tuple = ()):
    """A field; ``help_text`` makes it a ``tf-qa export`` flag, ``minimum`` and ``choices`` bound its value."""
    return dataclasses.field(default=default, metadata={"help": help_text, "minimum": minimum, "choices": choices})


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """The options of one export; the defaults are the transformers pipeline's.

    Attributes:
        max_seq_len: tokens per window, special tokens included (None: the checkpoint's, at most 384).
        doc_stride: tokens shared by consecutive windows.
        max_answer_len: default longest answer, in tokens (a request may ask for another).
        handle_impossible_answer: default for whether the empty answer may be returned.
        align_to_words: answers start and end on word boundaries (the pipeline's default).
        window_group_size: windows are sorted by length and run through the model in groups of this many,
            each group padded only to its own longest window (0: one group padded to the batch's longest).
        window_length_multiple: each group is padded further, to a multiple of this many tokens (at most
            ``max_seq_len``), so that the model runs on a few lengths whose kernels stay made (1: no padding;
            None: ``WINDOW_LENGTH_MULTIPLES`` of ``matmul_dtype``).
        matmul_dtype: ``"float32"`` (the pipeline's answers), ``"bfloat16"``: opt-in bf16 dense layers in the
            encoder, faster on CPUs with AMX/AVX512-BF16 but not identical (see ``tf_qa.graph.distilbert``), or
            ``"int8"``: bfloat16 with its dense products in int8 over calibrated ranges (``tf_qa.graph.int8``).
        parallel_branches: bfloat16 or int8 only: each transformer block runs as this many independent parts (its
            heads and FFN columns split between them) that TensorFlow runs side by side: a lone request's window
            uses that many cores, at some cost in throughput when the cores are busy anyway (None:
            ``PARALLEL_BRANCHES`` of ``matmul_dtype``; int8 takes at least ``MIN_INT8_PARALLEL_BRANCHES``).
        int8_ranges: int8 only: the input range ``(low, high)`` of each int8 product by its name, calibrated once
            at export (``tf_qa.saved_model.calibration``) and fixed in the graph, so that an answer never depends
            on the batch it was served in. None until calibrated.
        int8_channel_divisors: int8 only: {outlier input channel: divisor} by product name, calibrated with
            ``int8_ranges``: the channels divided into the range before the quantization.
        limits: bounds on the work of one call, checked in the graph before that work.
    """

    max_seq_len: int | None = _option(
        None, f"tokens per window (default: the checkpoint's, at most {DEFAULT_MAX_SEQ_LEN})", minimum=1
    )
    doc_stride: int = _option(
        DEFAULT_DOC_STRIDE, "tokens shared by consecutive windows (default %(default)s)", minimum=0
    )
    max_answer_len: int = _option(
        DEFAULT_MAX_ANSWER_LEN, "default longest answer in tokens (default %(default)s)", minimum=1
    )
    handle_impossible_answer: bool = _option(False)
    align_to_words: bool = _option(True)
    window_group_size: int = _option(
        DEFAULT_WINDOW_GROUP_SIZE,
        "run windows through the model in groups of similar length (0: pad all to the longest; default %(default)s)",
        minimum=0,
    )
    window_length_multiple: int | None = _option(
        None,
        "pad windows to a multiple of this many tokens, so that the model runs on a few lengths whose kernels "
        "stay made (1: no padding; default by --matmul-dtype: "
        + ", ".join(f"{dtype} {multiple}" for dtype, multiple in WINDOW_LENGTH_MULTIPLES.items())
        + ")",
        minimum=1,
    )
    matmul_dtype: str = _option(
        "float32",
        "bfloat16: opt-in faster dense layers on CPUs with AMX/AVX512-BF16; int8: bfloat16 with int8 products "
        "(VNNI/AMX-INT8), their ranges calibrated on --calibration questions; answers can differ from the "
        "pipeline's (tf-qa bench measures the agreement and EM/F1). Default %(default)s",
        choices=MATMUL_DTYPES,
    )
    parallel_branches: int | None = _option(
        None,
        "bfloat16 or int8 only: run each transformer block as N independent parts that TensorFlow runs side by side, "
        "so that a lone request uses N cores (lower latency on idle cores, lower throughput under load; "
        "default by --matmul-dtype: "
        + ", ".join(f"{dtype} {branches}" for dtype, branches in PARALLEL_BRANCHES.items())
        + f"; int8 takes at least {MIN_INT8_PARALLEL_BRANCHES})",
        minimum=1,
    )
    int8_ranges: dict[str, tuple[float, float]] | None = _option(None)
    int8_channel_divisors: dict[str, dict[int, float]] | None = _option(None)
    limits: RequestLimits = dataclasses.field(default_factory=RequestLimits)

    def __post_init__(self):
        if isinstance(self.limits, dict):
            object.__setattr__(self, "limits", RequestLimits(**self.limits))
        if self.window_length_multiple is None and self.matmul_dtype in WINDOW_LENGTH_MULTIPLES:
            object.__setattr__(self, "window_length_multiple", WINDOW_LENGTH_MULTIPLES[self.matmul_dtype])
        if self.parallel_branches is None and self.matmul_dtype in PARALLEL_BRANCHES:
            object.__setattr__(self, "parallel_branches", PARALLEL_BRANCHES[self.matmul_dtype])
        for field in dataclasses.fields(self):
            value, minimum = getattr(self, field.name), field.metadata.get("minimum")
            choices = field.metadata.get("choices")
            integer = isinstance(value, int) and not isinstance(value, bool)
            if minimum is not None and value is not None and not (integer and value >= minimum):
                raise ValueError(f"{field.name} must be an integer of at least {minimum}; got {value!r}")
            if choices and value not in choices:
                raise ValueError(f"{field.name} must be one of {', '.join(choices)}; got {value!r}")
        if self.parallel_branches > 1 and self.matmul_dtype not in REDUCED_MATMUL_DTYPES:
            raise ValueError("parallel_branches above 1 needs matmul_dtype bfloat16 or int8")
        if self.matmul_dtype == "int8" and self.parallel_branches < MIN_INT8_PARALLEL_BRANCHES:
            raise ValueError(
                f"matmul_dtype int8 needs parallel_branches of at least {MIN_INT8_PARALLEL_BRANCHES}: with whole "
                "blocks it lost more than 1.0 F1 against float32 (benchmarks/README.md)"
            )
        if self.int8_ranges is not None:
            object.__setattr__(self, "int8_ranges", _checked_ranges(self.int8_ranges, self.matmul_dtype))
        if self.int8_channel_divisors is not None:
            divisors = _checked_divisors(self.int8_channel_divisors, self.matmul_dtype)
            object.__setattr__(self, "int8_channel_divisors", divisors)
        if self.max_seq_len is not None and not self.doc_stride < self.max_seq_len:
            raise ValueError(f"doc_stride ({self.doc_stride}) must be in [0, max_seq_len={self.max_seq_len})")

    def with_max_seq_len(self, model_max_length: int) -> ExportOptions:
        """These options with ``max_seq_len`` set, when unset, from the checkpoint's longest input."""
        if self.max_seq_len is not None:
            return self
        return dataclasses.replace(self, max_seq_len=min(model_max_length, DEFAULT_MAX_SEQ_LEN))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, options: dict) -> ExportOptions:
        """The options recorded by ``as_dict`` (keys this version does not know are an error)."""
        # Exports made before these options padded nothing and ran their blocks whole.
        return cls(**{"window_length_multiple": 1, "parallel_branches": 1, **options})


def _checked_ranges(ranges: dict, matmul_dtype: str) -> dict[str, tuple[float, float]]:
    """``ranges`` as {name: (low, high)} floats (JSON gives lists), or the error that names the first bad one."""
    if matmul_dtype != "int8":
        raise ValueError(f"int8_ranges are for matmul_dtype int8, not {matmul_dtype}")
    checked = {}
    for name, pair in dict(ranges).items():
        try:
            low, high = (float(bound) for bound in pair)
        except (TypeError, ValueError):
            raise ValueError(f"int8_ranges[{name!r}] must be a (low, high) pair of numbers; got {pair!r}") from None
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"int8_ranges[{name!r}] must be finite with low < high; got {pair!r}")
        checked[str(name)] = (low, high)
    return checked


def _checked_divisors(divisors: dict, matmul_dtype: str) -> dict[str, dict[int, float]]:
    """``divisors`` as {name: {channel: divisor}} (JSON gives the channels as text), or the error that names the
    first bad one."""
    if matmul_dtype != "int8":
        raise ValueError(f"int8_channel_divisors are for matmul_dtype int8, not {matmul_dtype}")
    checked = {}
    for name, by_channel in dict(divisors).items():
        try:
            values = {int(channel): float(divisor) for channel, divisor in dict(by_channel).items()}
        except (TypeError, ValueError):
            values = {}
        if not values or min(values) < 0 or not all(math.isfinite(d) and d >= 1 for d in values.values()):
            wanted = "must map channel numbers to divisors of at least 1"
            raise ValueError(f"int8_channel_divisors[{name!r}] {wanted}; got {by_channel!r}")
        checked[str(name)] = values
    return checked


def flag_fields() -> list[dataclasses.Field]:
    """The fields that ``tf-qa export`` takes as flags, in order."""
    return [field for field in dataclasses.fields(ExportOptions) if field.metadata.get("help")]
