"""The README's tf.data and Keras examples run as written (the export's path substituted) and answer as the
signature does."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import tensorflow as tf

README = Path(__file__).resolve().parents[1] / "README.md"


def _run_readme_example(marker: str, version_dir: Path) -> dict:
    match = re.search(rf"<!-- {marker} -->\s*```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert match, f"README has no block marked {marker}"
    namespace = {}
    exec(match.group(1).replace("export/distilbert-squad/1", str(version_dir)), namespace)
    return namespace


def _signature_answers(saved_model, questions, contexts) -> dict:
    out = saved_model.signatures["serving_default"](question=tf.constant(questions), context=tf.constant(contexts))
    return {name: value.numpy().tolist() for name, value in out.items()}


def _assert_same_answers(got: dict, expected: dict) -> None:
    """Same texts and offsets; scores within float error (inside tf.data the graph runs without eager's calls)."""
    for name in ("answer", "start", "end"):
        assert got[name] == expected[name], name
    assert np.allclose(got["score"], expected["score"], atol=1e-5)


def test_the_tf_data_example(saved_model_dir, saved_model):
    namespace = _run_readme_example("tfdata-example", Path(saved_model_dir))
    got = {name: [] for name in ("answer", "score", "start", "end")}
    for batch in namespace["answers"]:
        for name in got:
            got[name] += batch[name].numpy().tolist()
    _assert_same_answers(got, _signature_answers(saved_model, namespace["questions"], namespace["contexts"]))


def test_the_keras_example(saved_model_dir, saved_model):
    namespace = _run_readme_example("keras-example", Path(saved_model_dir))
    questions, contexts = ["What is the capital of France?", "Who wrote it?"], ["Paris is.", "Adam wrote it."]
    out = namespace["qa"]({"question": tf.constant(questions), "context": tf.constant(contexts)})
    got = {name: value.numpy().tolist() for name, value in out.items()}
    _assert_same_answers(got, _signature_answers(saved_model, questions, contexts))
