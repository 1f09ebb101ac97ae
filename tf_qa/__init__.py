"""tf-qa: extractive question answering on TensorFlow Serving, the whole pipeline in the graph.

What users import, loaded on first use (``import tf_qa`` alone loads no TensorFlow):

>>> from tf_qa import QAClient                                   # doctest: +SKIP
>>> with QAClient("localhost:8500", "distilbert-squad") as client:  # doctest: +SKIP
...     client.answer("Where do I live?", "I live in Paris.")
{'answer': 'Paris', 'score': 0.98, 'start': 10, 'end': 15}
"""

from __future__ import annotations

import importlib
from importlib import metadata

try:
    __version__ = metadata.version("tf-qa")
except metadata.PackageNotFoundError:  # a source tree that was not installed
    __version__ = "0.0.0"

#: Public name -> the module that defines it.
_PUBLIC = {
    "QAClient": "tf_qa.client",
    "AsyncQAClient": "tf_qa.client",
    "TFQAError": "tf_qa.errors",
    "InvalidRequest": "tf_qa.errors",
    "RequestLimits": "tf_qa.graph.limits",
    "ExportOptions": "tf_qa.graph.options",
    "QuestionAnsweringModel": "tf_qa.graph.model",
    "export_model": "tf_qa.saved_model.export",
    "validate_saved_model": "tf_qa.saved_model.validate",
    "SavedModelAnswerer": "tf_qa.saved_model.answerer",
    "NativeAnswerer": "tf_qa.saved_model.answerer",
    "ServeOptions": "tf_qa.server.options",
    "ModelServer": "tf_qa.server.model_server",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'tf_qa' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
