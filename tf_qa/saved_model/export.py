"""Export a transformers QA checkpoint into a TF Serving model repository, atomically.

``export_model`` writes ``OUTPUT/<version>/`` with ``saved_model.pb``, ``variables/``, ``assets/`` (the vocab
the in-graph tokenizer was built from), ``assets.extra/tf_serving_warmup_requests`` (PredictionLog records for
every signature at batch sizes 1 and 8, one with a multi-window context) and ``assets.extra/tf_qa_export.json``
(source checkpoint, library versions, export options).

The version is built in a hidden, non-numeric folder inside ``OUTPUT`` (TF Serving only loads numeric
folders), checked by reloading it through the TF1 session path as tensorflow_model_server does, and only then
renamed into place: a crash, Ctrl-C, SIGTERM or a failed check leaves nothing a server could load.

Example:

>>> export_model("distilbert-base-uncased-distilled-squad", "export/distilbert-squad")  # doctest: +SKIP
PosixPath('export/distilbert-squad/1')
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from tf_qa.errors import SetupError
from tf_qa.graph.options import ExportOptions
from tf_qa.saved_model.calibration import CalibrationSet, calibrated_options
from tf_qa.saved_model.layout import export_record_file, next_version, warmup_file
from tf_qa.saved_model.platform_config import read_platform_config
from tf_qa.saved_model.session import run_requests
from tf_qa.saved_model.warmup import warmup_requests, write_warmup
from tf_qa.signatures import TOKEN_SPANS_SIGNATURE


class ExportError(SetupError):
    """An export that cannot be done (FAILED_PRECONDITION); the message says why."""


def check_output(output: Path, version: int | None, force: bool) -> int:
    """Validates the repository folder and returns the version to write."""
    if output.exists() and not output.is_dir():
        raise ExportError(f"output {output} exists and is not a folder")
    try:
        output.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=output).close()  # os.access says yes to root even on read-only mounts
    except OSError as error:
        raise ExportError(f"cannot write to output folder {output}: {error.strerror or error}") from None
    version = next_version(output) if version is None else version
    if version < 1:
        raise ExportError(f"version must be a positive integer, got {version}")
    if (output / str(version)).exists() and not force:
        raise ExportError(f"version {version} already exists in {output}; pass --force to overwrite it")
    return version


@contextmanager
def _heartbeat(report: Callable[[str], None], every: float = 15.0):
    """Reports that a long stage is still running, so a long export is never silent."""
    import threading

    done = threading.Event()
    started = time.monotonic()

    def beat():
        while not done.wait(every):
            report(f"  ... still working ({time.monotonic() - started:.0f}s)")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()


@contextmanager
def _sigterm_as_interrupt():
    """Lets SIGTERM unwind like Ctrl-C, so the temporary folder is removed."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def export_model(
    checkpoint: str,
    output: str | os.PathLike,
    *,
    version: int | None = None,
    force: bool = False,
    from_pt: bool = False,
    model_name: str | None = None,
    options: ExportOptions | None = None,
    report: Callable[[str], None] = print,
    source: str | None = None,
    calibration: CalibrationSet | None = None,
) -> Path:
    """Exports ``checkpoint`` (hub name or folder) to ``output/<version>`` and returns that folder.

    ``options`` (default: the pipeline's) are recorded in ``assets.extra/tf_qa_export.json``, with ``source``
    (default: ``checkpoint``), what the report and the record call the checkpoint. An int8 export without
    ``int8_ranges`` calibrates them on ``calibration`` (``tf_qa.saved_model.calibration``), recorded too.

    Raises:
        ExportError: with a message naming the problem; nothing is left behind.
    """
    output = Path(output)
    version = check_output(output, version, force)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=output))
    stage = _stage_timer(report)
    try:
        with _sigterm_as_interrupt(), _heartbeat(report):
            saved = _build_and_check(
                checkpoint,
                staging,
                source=source or checkpoint,
                from_pt=from_pt,
                model_name=model_name or output.name,
                options=options,
                report=report,
                stage=stage,
                calibration=calibration,
            )
            final = output / str(version)
            if final.exists():  # only with force
                shutil.rmtree(final)
            os.rename(saved, final)
            stage("publish")
            report(f"exported {source or checkpoint} to {final}")
            return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _stage_timer(report: Callable[[str], None]) -> Callable[[str], None]:
    """``stage(name)`` reports how long the stage that just ended took."""
    started = [time.monotonic()]

    def stage(name: str) -> None:
        now = time.monotonic()
        report(f"[{name}] done in {now - started[0]:.1f}s")
        started[0] = now

    return stage


def _build_and_check(
    checkpoint: str,
    staging: Path,
    *,
    source: str,
    from_pt: bool,
    model_name: str,
    options: ExportOptions | None,
    report,
    stage,
    calibration: CalibrationSet | None,
) -> Path:
    """Loads, calibrates (int8), builds, saves, writes warmup and metadata, and self-checks ``staging/model``;
    returns it."""
    report(f"[load] {source}")
    qa_model, tokenizer = _load(checkpoint, from_pt)
    stage("load")
    from tf_qa.graph.model import QuestionAnsweringModel

    options = options or ExportOptions()
    calibrated_on = None  # what this export calibrated its int8 ranges on, for its record
    if options.matmul_dtype == "int8" and options.int8_ranges is None:
        options = _calibrated(qa_model, tokenizer, options, calibration, report)
        calibrated_on = calibration
        stage("calibrate")

    try:
        model = QuestionAnsweringModel.from_transformers(qa_model, tokenizer, options)
    except ValueError as error:
        raise ExportError(str(error)) from None
    vocab_dir = staging / "vocab"
    tokenizer.save_vocabulary(str(vocab_dir.mkdir() or vocab_dir))
    model.attach_vocabulary(next(vocab_dir.iterdir()))
    stage("build")
    saved = staging / "model"
    # The functions the served graph calls are optimized with the session's Grappler options too.
    model.save_for_serving(str(saved), read_platform_config().session_config.graph_options.rewrite_options)
    shutil.rmtree(vocab_dir)
    stage("save")
    requests = warmup_requests(model_name)
    write_warmup(warmup_file(saved), requests)
    _write_metadata(export_record_file(saved), source, model, calibrated_on)
    stage("warmup")
    _self_check(model, saved, requests, model.options.matmul_dtype)
    stage("self-check")
    return saved


def _load(checkpoint: str, from_pt: bool):
    from tf_qa.graph.model import CheckpointError, load_checkpoint

    try:
        return load_checkpoint(checkpoint, from_pt=from_pt)
    except CheckpointError as error:
        raise ExportError(str(error)) from None


def _calibrated(qa_model, tokenizer, options: ExportOptions, calibration, report) -> ExportOptions:
    """``options`` with the int8 ranges measured on ``calibration``."""
    from tf_qa.graph.distilbert import is_supported

    if calibration is None:
        raise ExportError("an int8 export calibrates its ranges on questions: give --calibration FILE")
    if not is_supported(qa_model):
        raise ExportError("matmul_dtype='int8' needs a DistilBERT QA model")
    report(f"[calibrate] int8 ranges on {calibration.describe()}")
    options = options.with_max_seq_len(tokenizer.model_max_length)
    try:
        return calibrated_options(qa_model, tokenizer, options, calibration)
    except ValueError as error:
        raise ExportError(str(error)) from None


def _write_metadata(path: Path, checkpoint: str, model, calibrated_on: CalibrationSet | None) -> None:
    import tensorflow as tf
    import tensorflow_text
    import transformers

    metadata = {
        "source_checkpoint": checkpoint,
        "versions": {
            "tensorflow": tf.__version__,
            "tensorflow_text": tensorflow_text.__version__,
            "transformers": transformers.__version__,
        },
        "options": model.get_config(),
        **({"int8_calibration": calibrated_on.describe()} if calibrated_on else {}),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")


#: Machine epsilon of each matmul dtype: 2^-(explicit mantissa bits).
_EPSILON = {"float32": 2.0**-23, "bfloat16": 2.0**-7, "int8": 2.0**-7}


def self_check_tolerance(matmul_dtype: str) -> float:
    """How far the SavedModel's span scores may be from the in-memory model's, both computed in ``matmul_dtype``.

    The two run the same weights through different graphs (the saved one rewritten and fused by TF1's session),
    so their roundings differ: by a few units in the last place of the matmul dtype. Four of its epsilons, and
    never below 1e-4 (fp32's own differences stay under 1e-6).
    """
    return max(1e-4, 4 * _EPSILON[matmul_dtype])


def span_differences(saved: dict, expected: dict, matmul_dtype: str) -> list[str]:
    """What differs between two ``token_spans`` outputs: start and end must be equal, scores within the
    precision's tolerance; one line per differing row."""
    tolerance = self_check_tolerance(matmul_dtype)
    problems = []
    for row in range(len(expected["score"])):
        spans = [(int(out["start"][row]), int(out["end"][row])) for out in (saved, expected)]
        difference = abs(float(saved["score"][row]) - float(expected["score"][row]))
        if spans[0] != spans[1]:
            problems.append(f"row {row}: span {spans[0]} instead of {spans[1]}")
        elif difference > tolerance:
            problems.append(
                f"row {row}: score {float(saved['score'][row]):.6f} instead of {float(expected['score'][row]):.6f} "
                f"(difference {difference:.2g}, tolerance {tolerance:.2g} for {matmul_dtype} matmuls)"
            )
    return problems


def _self_check(model, saved: Path, requests: list, matmul_dtype: str) -> None:
    """Reloads through the TF1 session path, answers the warmup requests, and compares the token-level
    spans (start, end and score, which come straight from the logits) with the in-memory source model's."""
    import tensorflow as tf

    results = run_requests(saved, requests)
    for request, result in zip(requests, results):
        if request.model_spec.signature_name != TOKEN_SPANS_SIGNATURE:
            continue
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        expected = model.token_spans(inputs["input_ids"], inputs["attention_mask"])
        problems = span_differences(result, {k: v.numpy() for k, v in expected.items()}, matmul_dtype)
        if problems:
            raise ExportError(
                "self-check failed: the SavedModel's token spans differ from the source model's on the warmup "
                f"inputs: {'; '.join(problems[:3])}"
            )
