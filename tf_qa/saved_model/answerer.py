"""An export answering in this process: ``tf_qa.signatures.Answerer`` over TensorFlow's Python runtime
(``SavedModelAnswerer``) or its C++ runtime as tensorflow_model_server runs it (``NativeAnswerer``).

``tf_qa.client.QAClient`` is the same interface over gRPC, so a caller switches runtimes by the object it is given.

Example:

>>> with SavedModelAnswerer("export/distilbert-squad/1") as model:                          # doctest: +SKIP
...     model.answer_batch(["Where do I live?"], ["I live in Paris."])
[{'answer': 'Paris', 'score': 0.98, 'start': 10, 'end': 15}]
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from tf_qa import errors
from tf_qa.signatures import TOP_K_SIGNATURE, answer_top_k_inputs, answers_from_arrays


class _InProcessAnswerer:
    """``answer_batch`` over ``answer_arrays``, which each runtime implements."""

    version_dir: str

    def answer_arrays(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``answer_top_k``'s [B, K] outputs for its inputs (``tf_qa.signatures.answer_top_k_inputs``)."""
        raise NotImplementedError

    def answer_batch(self, questions: Sequence[str], contexts: Sequence[str], **settings) -> list:
        """``tf_qa.signatures.Answerer.answer_batch``; ``settings`` are ``answer_top_k_inputs``' (``top_k``,
        ``max_answer_len``, ``handle_impossible_answer``), so a new input of the signature needs no change here."""
        inputs = answer_top_k_inputs(questions, contexts, **settings)
        return answers_from_arrays(self.answer_arrays(inputs), inputs["top_k"])

    def _refused(self, message: str) -> errors.InvalidRequest:
        return errors.InvalidRequest(
            f"{self.version_dir}: {errors.graph_error_message(message)}",
            code=errors.StatusCode.INVALID_ARGUMENT,
            target=self.version_dir,
        )

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SavedModelAnswerer(_InProcessAnswerer):
    """The version folder loaded with ``tf.saved_model.load`` (TF Text's ops registered), or ``loaded``, that
    folder already loaded.

    In a process that has not run TensorFlow nor set ``tf.config.threading``, it sizes TensorFlow's thread pools
    as the platform config does for TF Serving (one thread an op), so that an export runs here as it is served
    (what that does to each export's speed: benchmarks/README.md). Set ``tf.config.threading`` first to choose
    otherwise.
    """

    def __init__(self, version_dir: str | os.PathLike, loaded=None):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  registers the TF Text op the graph uses

        from tf_qa.saved_model.platform_config import read_platform_config
        from tf_qa.saved_model.session import use_session_threads_unless_chosen

        use_session_threads_unless_chosen(read_platform_config().session_config)
        self.version_dir = str(version_dir)
        loaded = loaded if loaded is not None else tf.saved_model.load(self.version_dir)
        self._signature = loaded.signatures[TOP_K_SIGNATURE]

    def answer_arrays(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        try:
            out = self._signature(**{name: tf.constant(array) for name, array in inputs.items()})
        except tf.errors.InvalidArgumentError as error:
            raise self._refused(error.message) from None
        return {name: value.numpy() for name, value in out.items()}


class NativeAnswerer(_InProcessAnswerer):
    """The version folder in TensorFlow's C++ runtime (``tf_qa.saved_model.native``); raises its
    ``NativeUnavailable`` where the runner cannot be built."""

    def __init__(self, version_dir: str | os.PathLike, session_config=None):
        from tf_qa.saved_model.native import NativeSession

        self.version_dir = str(version_dir)
        self.session = NativeSession(self.version_dir, session_config)

    def answer_arrays(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from tf_qa.saved_model.native import NativeError

        try:
            return self.session.run(TOP_K_SIGNATURE, inputs)[0]
        except NativeError as error:
            if error.code == errors.StatusCode.INVALID_ARGUMENT:
                raise self._refused(error.message) from None
            raise

    def close(self) -> None:
        self.session.close()
