"""Bounds on the work one call of the serving graph may ask for, set at export (no TensorFlow here).

Stock TF Serving runs the SavedModel and knows nothing of its meaning, so every bound lives in the graph
itself (``tf_qa.graph.checks`` builds the checks); the values are export options, recorded in the export's
metadata. A call is one request, or one batch that a server merged from several.

Example:

>>> limits = RequestLimits(max_examples=2)
>>> limits.max_examples, export_flag("max_examples")
(2, '--max-examples')
>>> limits.over("max_examples", "examples")
'examples, over the limit max_examples=2 (raise it with tf-qa export --max-examples)'
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class RequestLimits:
    """Per-call bounds of the serving graph; the defaults serve long documents in one request.

    Attributes:
        max_examples: examples (question, context pairs) in one call; for ``token_spans``, windows.
        max_text_bytes: UTF-8 bytes of all questions and contexts of one call together (256 KiB: about 45,000
            words of English in about 220 windows; tokenizing it takes well under 100 ms).
        max_windows: model windows one call may produce, each up to ``max_seq_len`` tokens (512: room for
            256 KiB of text with more tokens per byte than English, such as CJK).
        max_top_k: the largest ``top_k`` an example may ask for (K output columns are allocated per example).
    """

    max_examples: int = 256
    max_text_bytes: int = 256 << 10
    max_windows: int = 512
    max_top_k: int = 1000

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**31:
                raise ValueError(f"{field.name} must be an integer from 1 to 2^31-1; got {value!r}")

    def over(self, name: str, unit: str) -> str:
        """The end of the message for a call over the limit ``name`` (the value received comes before it)."""
        return f"{unit}, over the limit {name}={getattr(self, name)} (raise it with tf-qa export {export_flag(name)})"

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def export_flag(name: str) -> str:
    """The ``tf-qa export`` option that sets the limit ``name``."""
    return "--" + name.replace("_", "-")
