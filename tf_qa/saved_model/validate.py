"""``tf-qa validate PATH``: does a SavedModel fit TensorFlow Serving?

Checks, in plain words:

1. the ``serve`` MetaGraph and its signatures, every input and output batched along dim 0 (TF Serving's REST
   row format needs it);
2. every op of the graph and its functions is a TensorFlow core op or a TF Text op (tensorflow_model_server
   links both); ops that need a Python interpreter (``py_function``) are flagged;
3. the warmup file ``assets.extra/tf_serving_warmup_requests`` parses as PredictionLog records and each
   request runs through the TF1 session path;
4. the TensorFlow / TF Text versions the model was exported with, and the TF Serving release it needs.

Example:

>>> report = validate_saved_model("export/distilbert-squad/1")    # doctest: +SKIP
>>> report.ok, report.lines[:2]                                    # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from pathlib import Path

from tf_qa.saved_model.export import METADATA_FILE
from tf_qa.saved_model.session import run_requests
from tf_qa.saved_model.warmup import WARMUP_FILE, read_warmup

#: Core ops that exist in TensorFlow but cannot run in tensorflow_model_server (no Python there).
PYTHON_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}


@dataclasses.dataclass
class ValidationReport:
    """``lines`` say what was checked; ``problems`` what makes the model unfit for TF Serving."""

    lines: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def say(self, line: str) -> None:
        self.lines.append(line)

    def problem(self, line: str) -> None:
        self.problems.append(line)
        self.lines.append("PROBLEM: " + line)


def core_ops() -> set[str]:
    """Ops compiled into TensorFlow itself (``tf.raw_ops``)."""
    import tensorflow as tf

    return {name for name in dir(tf.raw_ops) if not name.startswith("_")}


def tf_text_ops() -> set[str]:
    """Ops of TF Text's kernels libraries (linked into tensorflow_model_server)."""
    import tensorflow as tf
    import tensorflow_text
    from tensorflow.python.framework import op_def_registry

    names = set()
    for library in glob.glob(os.path.join(os.path.dirname(tensorflow_text.__file__), "python", "*", "_*.so")):
        module = tf.load_op_library(library)
        names |= {a for a in dir(module) if a[:1].isupper() and op_def_registry.get(a) is not None}
    return names


def graph_ops(meta_graph) -> set[str]:
    """Every op type in a MetaGraph, its function library included."""
    ops = {node.op for node in meta_graph.graph_def.node}
    for function in meta_graph.graph_def.library.function:
        ops |= {node.op for node in function.node_def}
    functions = {f.signature.name for f in meta_graph.graph_def.library.function}
    return ops - functions


def validate_saved_model(path: str | os.PathLike) -> ValidationReport:
    """Checks a SavedModel version folder; see the module docstring."""
    from tensorflow.python.saved_model import loader_impl

    path = Path(path)
    report = ValidationReport()
    try:
        saved_model = loader_impl.parse_saved_model(str(path))
    except OSError as error:
        report.problem(f"no SavedModel at {path}: {error}")
        return report
    serve = [m for m in saved_model.meta_graphs if "serve" in m.meta_info_def.tags]
    if not serve:
        report.problem("no MetaGraph is tagged 'serve'")
        return report
    _check_signatures(serve[0], report)
    _check_ops(serve[0], report)
    _check_warmup(path, report)
    _check_metadata(path, report)
    return report


def _check_signatures(meta_graph, report: ValidationReport) -> None:
    signatures = {k: v for k, v in meta_graph.signature_def.items() if not k.startswith("__")}
    report.say(f"signatures: {', '.join(sorted(signatures))}")
    if "serving_default" not in signatures:
        report.problem("no 'serving_default' signature (requests without a signature name will fail)")
    for name, signature in sorted(signatures.items()):
        for kind, tensors in (("input", signature.inputs), ("output", signature.outputs)):
            for key, info in sorted(tensors.items()):
                dims = [d.size for d in info.tensor_shape.dim]
                if info.tensor_shape.unknown_rank or not dims or dims[0] != -1:
                    report.problem(f"{name}: {kind} {key!r} has shape {dims}, not batched along dim 0")
        report.say(f"  {name}: inputs {sorted(signature.inputs)} -> outputs {sorted(signature.outputs)}, all batched")


def _check_ops(meta_graph, report: ValidationReport) -> None:
    ops = graph_ops(meta_graph)
    core, text = core_ops(), tf_text_ops()
    python_ops = sorted(ops & PYTHON_OPS)
    text_used = sorted(ops & text - core)
    unknown = sorted(ops - core - text)
    report.say(
        f"ops: {len(ops)} kinds; TF Text ops (linked by tensorflow_model_server): {', '.join(text_used) or 'none'}"
    )
    if python_ops:
        report.problem(f"ops that need Python, which tensorflow_model_server does not have: {', '.join(python_ops)}")
    if unknown:
        report.problem(f"ops that are neither TensorFlow core nor TF Text: {', '.join(unknown)}")


def _check_warmup(path: Path, report: ValidationReport) -> None:
    warmup = path / "assets.extra" / WARMUP_FILE
    if warmup.exists():
        try:
            requests = read_warmup(warmup)
        except Exception as error:  # noqa: BLE001  any parse failure is the finding
            report.problem(f"warmup file does not parse as PredictionLog records: {error}")
        else:
            if len(requests) > 1000:
                report.problem(f"warmup file has {len(requests)} records; TF Serving reads at most 1000")
            try:
                run_requests(path, requests)
                report.say(f"warmup: {len(requests)} requests parse and run")
            except Exception as error:  # noqa: BLE001  any failure of a warmup request is the finding
                report.problem(f"a warmup request fails: {str(error).splitlines()[0]}")
    else:
        report.say("warmup: none (the first requests after a load will be slow)")


def _check_metadata(path: Path, report: ValidationReport) -> None:
    metadata_file = path / "assets.extra" / METADATA_FILE
    if metadata_file.exists():
        try:
            metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
        except ValueError as error:
            report.problem(f"{METADATA_FILE} is not JSON: {error}")
            return
        versions = metadata.get("versions", {})
        tf_version = versions.get("tensorflow", "?")
        major_minor = ".".join(tf_version.split(".")[:2])
        report.say(
            f"made with TensorFlow {tf_version}, TF Text {versions.get('tensorflow_text', '?')}, "
            f"transformers {versions.get('transformers', '?')}: needs TF Serving {major_minor} or newer "
            f"(tensorflow/serving:{major_minor}.0 or later)"
        )
        limits = metadata.get("options", {}).get("limits")
        if limits:
            report.say("limits per call (set at export): " + ", ".join(f"{k} {v}" for k, v in limits.items()))
        else:
            report.say("limits per call: none recorded (exported before tf-qa checked them in the graph)")
