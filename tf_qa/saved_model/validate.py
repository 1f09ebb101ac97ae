"""``tf-qa validate PATH``: does a SavedModel fit TensorFlow Serving?

Checks, in plain words:

1. the ``serve`` MetaGraph and its signatures, every input and output batched along dim 0 (TF Serving's REST
   row format needs it);
2. every op of the graph and its functions is a TensorFlow core op or a TF Text op (tensorflow_model_server
   links both), or an op of TensorFlow's oneDNN kernels that this TensorFlow registers (int8 exports: x86-64
   builds have them, named in the report); ops that need a Python interpreter (``py_function``) are flagged;
3. the warmup file ``assets.extra/tf_serving_warmup_requests`` parses as PredictionLog records and each
   request runs through the TF1 session path;
4. the TensorFlow / TF Text versions the model was exported with, and the TF Serving release it needs;
5. native: the warmup requests and probe inputs (non-ASCII, a multi-window context) run in TensorFlow's C++
   runtime as tensorflow_model_server runs them (``native.py``) give the Python session's outputs: text, ids
   and offsets identical, scores within ``NATIVE_TOLERANCE``; with its load time and latency per request. Where
   no C++ compiler is present the line says the check was skipped and why.

Example:

>>> report = validate_saved_model("export/distilbert-squad/1")    # doctest: +SKIP
>>> report.ok, report.lines[:2]                                    # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from tf_qa import signatures
from tf_qa.cpu import cpu_features
from tf_qa.defaults import REDUCED_MATMUL_DTYPES
from tf_qa.saved_model.layout import export_record_file, read_export_record, warmup_file
from tf_qa.saved_model.native import NativeError, NativeSession, NativeUnavailable, tf_text_op_libraries
from tf_qa.saved_model.session import load_session, run_predict_request
from tf_qa.saved_model.warmup import make_request, read_warmup
from tf_qa.signatures import SERVING_DEFAULT, TOP_K_SIGNATURE

#: Core ops that exist in TensorFlow but cannot run in tensorflow_model_server (no Python there).
PYTHON_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}
#: Largest score difference allowed between the native runtime and the Python session (same kernels, same CPU).
NATIVE_TOLERANCE = 1e-5

_PROBE_QUESTION = "Où est née Marie Skłodowska-Curie ?"
_PROBE_CONTEXT = "Marie Skłodowska-Curie est née à Varsovie en 1867. 東京は日本の首都です。 Ça, naïve café — “done” 🙂."


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
    import tensorflow_text  # noqa: F401  registers the ops the libraries below declare
    from tensorflow.python.framework import op_def_registry

    names = set()
    for library in tf_text_op_libraries():
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
    _check_signatures(serve[0], report, tf_qa_export=export_record_file(path).exists())
    _check_ops(serve[0], report)
    session = _load_python_session(path, report)
    try:
        warmup, outputs = _check_warmup(path, session, report)
        _check_metadata(path, report)
        if session is not None:
            _check_native(path, session, warmup, outputs, probe_requests(serve[0]), report)
    finally:
        if session is not None:
            session[0].close()
    return report


def _load_python_session(path: Path, report: ValidationReport):
    """``load_session``'s (session, signature defs), loaded once for the warmup and the native check's probes;
    None when the model does not load that way (reported)."""
    try:
        return load_session(str(path))
    except Exception as error:  # noqa: BLE001  any load failure is the finding
        report.problem(f"the TF1 session path (tensorflow_model_server's) does not load it: {_first_line(error)}")
        return None


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _check_signatures(meta_graph, report: ValidationReport, tf_qa_export: bool) -> None:
    """Every signature batched along dim 0; a tf-qa export's (it has an export record) also as
    ``tf_qa.signatures`` states them, since tf-qa's clients send and read exactly that."""
    found = {k: v for k, v in meta_graph.signature_def.items() if not k.startswith("__")}
    report.say(f"signatures: {', '.join(sorted(found))}")
    if "serving_default" not in found:
        report.problem("no 'serving_default' signature (requests without a signature name will fail)")
    for name, signature in sorted(found.items()):
        contract = signatures.SIGNATURES.get(name) if tf_qa_export else None
        for kind, tensors in (("input", signature.inputs), ("output", signature.outputs)):
            for key, info in sorted(tensors.items()):
                dims = [d.size for d in info.tensor_shape.dim]
                if info.tensor_shape.unknown_rank or not dims or dims[0] != -1:
                    report.problem(f"{name}: {kind} {key!r} has shape {dims}, not batched along dim 0")
            if contract:
                _check_against_contract(name, kind, tensors, getattr(contract, kind + "s"), report)
        report.say(f"  {name}: inputs {sorted(signature.inputs)} -> outputs {sorted(signature.outputs)}, all batched")


def _check_against_contract(name: str, kind: str, tensors, expected: dict, report: ValidationReport) -> None:
    """Names, dtypes and ranks as ``tf_qa.signatures`` (what the clients send and read) states them."""
    import tensorflow as tf

    if set(tensors) != set(expected):
        report.problem(f"{name}: {kind}s {sorted(tensors)}, but tf_qa.signatures states {sorted(expected)}")
        return
    for key, info in sorted(tensors.items()):
        dtype, rank = tf.as_dtype(info.dtype).name, len(info.tensor_shape.dim)
        if (dtype, rank) != (expected[key].dtype, len(expected[key].shape)):
            report.problem(
                f"{name}: {kind} {key!r} is {dtype} of rank {rank}, but tf_qa.signatures states "
                f"{expected[key].dtype} of rank {len(expected[key].shape)}"
            )


def onednn_ops() -> set[str]:
    """The ops of TensorFlow's oneDNN kernels an export may use, where this TensorFlow registers them."""
    from tensorflow.python.framework import op_def_registry

    from tf_qa.graph.int8 import QUANTIZED_MATMUL_OP

    return {name for name in (QUANTIZED_MATMUL_OP,) if op_def_registry.get(name) is not None}


def _check_ops(meta_graph, report: ValidationReport) -> None:
    ops = graph_ops(meta_graph)
    core, text, onednn = core_ops(), tf_text_ops(), onednn_ops()
    python_ops = sorted(ops & PYTHON_OPS)
    text_used = sorted(ops & text - core)
    onednn_used = sorted(ops & onednn)
    unknown = sorted(ops - core - text - onednn)
    report.say(
        f"ops: {len(ops)} kinds; TF Text ops (linked by tensorflow_model_server): {', '.join(text_used) or 'none'}"
    )
    if onednn_used:
        report.say(
            f"oneDNN ops: {', '.join(onednn_used)}: in TensorFlow's x86-64 Linux and Windows builds, "
            "tensorflow_model_server's included; not in builds for other CPUs"
        )
    if python_ops:
        report.problem(f"ops that need Python, which tensorflow_model_server does not have: {', '.join(python_ops)}")
    if unknown:
        report.problem(f"ops that are neither TensorFlow core nor TF Text: {', '.join(unknown)}")


def _check_warmup(path: Path, session, report: ValidationReport) -> tuple[list, list]:
    """Runs the warmup requests in ``session``; returns those that ran and their outputs (none when one fails, or
    when there is no session to run them in)."""
    warmup = warmup_file(path)
    if not warmup.exists():
        report.say("warmup: none (the first requests after a load will be slow)")
        return [], []
    try:
        requests = read_warmup(warmup)
    except Exception as error:  # noqa: BLE001  any parse failure is the finding
        report.problem(f"warmup file does not parse as PredictionLog records: {error}")
        return [], []
    if len(requests) > 1000:
        report.problem(f"warmup file has {len(requests)} records; TF Serving reads at most 1000")
    if session is None:
        return [], []
    try:
        outputs = [run_predict_request(*session, request) for request in requests]
    except Exception as error:  # noqa: BLE001  any failure of a warmup request is the finding
        report.problem(f"a warmup request fails: {_first_line(error)}")
        return [], []
    report.say(f"warmup: {len(requests)} requests parse and run")
    return requests, outputs


def probe_requests(meta_graph) -> list:
    """Non-ASCII text, alone and as a multi-window context, for each text signature the model has."""
    contexts = [_PROBE_CONTEXT, " ".join([_PROBE_CONTEXT] * 40)]
    questions = [_PROBE_QUESTION] * 2
    inputs_by_signature = {
        SERVING_DEFAULT: signatures.serving_default_inputs(questions, contexts),
        TOP_K_SIGNATURE: signatures.answer_top_k_inputs(
            questions, contexts, top_k=[3, 2], max_answer_len=[15, 30], handle_impossible_answer=[True, False]
        ),
    }
    return [
        make_request("probe", name, inputs)
        for name, inputs in inputs_by_signature.items()
        if name in meta_graph.signature_def and set(meta_graph.signature_def[name].inputs) == set(inputs)
    ]


def _check_metadata(path: Path, report: ValidationReport) -> None:
    try:
        metadata = read_export_record(path)
    except ValueError as error:
        report.problem(str(error))
        return
    if metadata is not None:
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
        matmul_dtype = metadata.get("options", {}).get("matmul_dtype")
        if matmul_dtype in REDUCED_MATMUL_DTYPES:
            _check_cpu(report, "bf16")
        if matmul_dtype == "int8":
            _say_int8_calibration(metadata, report)
            _check_cpu(report, "int8")


def _say_int8_calibration(metadata: dict, report: ValidationReport) -> None:
    options = metadata["options"]
    report.say(
        f"int8 export: {len(options.get('int8_ranges') or {})} products, "
        f"{len(options.get('int8_channel_divisors') or {})} of them with outlier channels divided into their range; "
        f"calibrated on {metadata.get('int8_calibration', 'questions not recorded')}"
    )


#: By precision: the ``CpuFeatures`` property that says the CPU multiplies in it, what that takes, and what happens
#: elsewhere.
_NATIVE_PRECISION = {
    "bf16": ("native_bf16", "AVX512_BF16 or AMX", "bf16 is emulated there, slower than the fp32 export"),
    "int8": ("native_int8", "AVX512_VNNI or AMX-INT8", "its int8 products run on slower instructions there"),
}


def _check_cpu(report: ValidationReport, precision: str) -> None:
    """A bf16 or int8 export is fast only where the CPU multiplies in that precision itself."""
    native, needs, elsewhere = _NATIVE_PRECISION[precision]
    cpu = cpu_features()
    if getattr(cpu, native):
        report.say(f"{precision} export: this CPU multiplies {precision} natively: {cpu.describe()}")
    else:
        report.say(
            f"WARNING: {precision} export on a CPU without {needs} ({cpu.describe()}): {elsewhere}; "
            "serve the fp32 export on such machines"
        )


def _check_native(path: Path, session, warmup: list, warmup_outputs: list, probes: list, report) -> None:
    """Runs the warmup requests and ``probes`` in the native runtime, and the probes in the Python ``session``
    (``load_session``'s pair, which answered the warmup already); compares; see the module docstring, item 5."""
    requests = warmup + probes
    try:
        native = NativeSession(path)
    except NativeUnavailable as why:
        report.say(f"native: skipped: {why}")
        return
    except NativeError as error:
        report.problem(f"native: TensorFlow's C++ runtime does not load the model: {error}")
        return
    with native:
        try:
            answered = [
                native.run_tensor_protos(r.model_spec.signature_name or SERVING_DEFAULT, r.inputs) for r in requests
            ]
        except NativeError as error:
            report.problem(f"native: a request fails in TensorFlow's C++ runtime: {error}")
            return
    try:
        expected = warmup_outputs + [run_predict_request(*session, probe) for probe in probes]
    except Exception as error:  # noqa: BLE001  any failure of a probe in the Python session is the finding
        report.problem(f"native: a probe request fails in the Python session: {_first_line(error)}")
        return
    largest = 0.0
    for request, python, (ours, _) in zip(requests, expected, answered):
        difference = output_difference(python, ours)
        if isinstance(difference, str):
            report.problem(f"native: {request.model_spec.signature_name}: {difference}")
            return
        largest = max(largest, difference)
    first, *rest = [s for _, s in answered] or [0.0]
    rest = sorted(rest) or [first]
    report.say(
        f"native: {len(requests)} requests in TensorFlow's C++ runtime (LoadSavedModel, tag serve, the platform "
        f"config's session) equal the Python session's (largest score difference {largest:.1g}); load "
        f"{native.load_seconds:.2f} s, first request {1000 * first:.0f} ms, then p50 "
        f"{1000 * rest[len(rest) // 2]:.1f} ms, max {1000 * rest[-1]:.1f} ms per request"
    )


def output_difference(python: dict, native: dict) -> float | str:
    """The largest float difference between two output dicts, or what differs otherwise."""
    if sorted(python) != sorted(native):
        return f"outputs {sorted(native)} instead of {sorted(python)}"
    largest = 0.0
    for key, expected in python.items():
        got = native[key]
        if expected.shape != got.shape:
            return f"output {key!r} has shape {got.shape} instead of {expected.shape}"
        if expected.dtype.kind == "f":
            largest = max(largest, float(np.max(np.abs(expected - got), initial=0.0)))
            if largest > NATIVE_TOLERANCE:
                return f"output {key!r} differs by {largest:.2e} (tolerance {NATIVE_TOLERANCE:.0e})"
        elif not np.array_equal(expected, got):
            return f"output {key!r} differs"
    return largest
