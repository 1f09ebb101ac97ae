"""``tf-qa``: export a checkpoint for TF Serving, serve it, ask it questions.

tf-qa export --model distilbert-base-uncased-distilled-squad --output export/distilbert-squad
tf-qa validate export/distilbert-squad/1
tf-qa serve --model-base-path export/distilbert-squad --model-name distilbert-squad --port 8500
tf-qa evaluate --squad dev-v1.1.json --target localhost:8500 --model-name distilbert-squad
tf-qa ask --target localhost:8500 --model-name distilbert-squad --question "..." --context "..."
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile

from grpc import StatusCode

from tf_qa import console
from tf_qa.arguments import build_parser
from tf_qa.errors import TFQAError, UsageError
from tf_qa.graph.limits import RequestLimits
from tf_qa.graph.options import ExportOptions, flag_fields

# oneDNN runs the fused kernels the model is written for (MatMul+BiasAdd+GELU, LayerNorm); TensorFlow turns it on
# by default only on CPUs with AVX512_VNNI, AVX512_BF16 or AMX. Set before TensorFlow is imported; 0 opts out.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


#: What the client-only install lacks (pip install 'tf-qa[full]' brings them).
_FULL_INSTALL_MODULES = {
    "tensorflow",
    "tensorflow_text",
    "tensorflow_serving",
    "tf_keras",
    "transformers",
    "apache_beam",
}


class CommandError(TFQAError):
    """A command that cannot be done as asked (FAILED_PRECONDITION unless said): one line on stderr and an exit
    code, never a traceback."""

    code = StatusCode.FAILED_PRECONDITION


#: The exit code of an error: by its kind where it has one, else by its status code, else 1 (a server's refusal,
#: a file that cannot be read or is not SQuAD, an export that cannot be done).
EXIT_CODES = {
    UsageError: 2,  # the command line itself is wrong, as argparse's own usage errors
    StatusCode.CANCELLED: 130,  # interrupted (Ctrl-C), as a shell reports SIGINT
}


def exit_code(error: TFQAError) -> int:
    kinds = [code for kind, code in EXIT_CODES.items() if isinstance(kind, type) and isinstance(error, kind)]
    return kinds[0] if kinds else EXIT_CODES.get(error.code, 1)


def _read_text(path: str, what: str) -> str:
    """The file's UTF-8 text; CommandError naming ``what`` when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as error:
        raise CommandError(f"cannot read {what} {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise CommandError(f"{what} {path} is not UTF-8 text") from None


def _version_dir(path: str) -> str:
    """``path`` if it is a version folder, else its newest version (said on stderr)."""
    from tf_qa.saved_model.layout import resolve_version_dir

    try:
        version_dir, note = resolve_version_dir(path)
    except FileNotFoundError as error:
        raise CommandError(str(error)) from None
    if note:
        print(note, file=sys.stderr)
    return version_dir


#: What an export of ``tf-qa export --demo`` names as its source (tf_qa/data/minilm_squad/MODEL_CARD.md).
DEMO_SOURCE = "tf-qa demo model (all-MiniLM-L6-v2 fine-tuned on SQuAD)"


def _export(args) -> int:
    try:
        limits = RequestLimits(**{name: getattr(args, name) for name in RequestLimits().as_dict()})
        options = ExportOptions(**{field.name: getattr(args, field.name) for field in flag_fields()}, limits=limits)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not args.demo and not args.model:
        raise UsageError("--model or --demo is required")
    calibration = _calibration(args, options)
    if args.demo:
        from tf_qa.checkpoints import make_trained_demo_checkpoint

        print(f"exporting the {DEMO_SOURCE}; see its model card")
        with tempfile.TemporaryDirectory(prefix="tf-qa-demo-") as folder:
            checkpoint = make_trained_demo_checkpoint(folder)
            return _export_checkpoint(args, checkpoint, DEMO_SOURCE, options, calibration)
    return _export_checkpoint(args, args.model, args.model, options, calibration)


def _calibration(args, options: ExportOptions):
    """The questions an int8 export calibrates on (``--calibration``; the demo's training articles by default)."""
    from tf_qa import questions

    if options.matmul_dtype != "int8":
        if args.calibration:
            raise UsageError("--calibration is for --matmul-dtype int8")
        return None
    try:
        if args.calibration:
            return questions.calibration_questions(args.calibration, args.calibration_questions)
        if args.demo:
            return questions.demo_calibration_questions(args.calibration_questions)
    except ValueError as error:
        raise UsageError(str(error)) from None
    raise UsageError("--matmul-dtype int8 calibrates its ranges on questions: give --calibration FILE")


def _export_checkpoint(args, checkpoint: str, source: str, options: ExportOptions, calibration) -> int:
    from tf_qa.saved_model.export import export_model

    try:
        export_model(
            checkpoint,
            args.output,
            version=args.version,
            force=args.force,
            from_pt=args.from_pt,
            model_name=args.model_name,
            options=options,
            source=source,
            calibration=calibration,
        )
    except KeyboardInterrupt:
        raise CommandError("interrupted; nothing was published", code=StatusCode.CANCELLED) from None
    return 0


def _answerer(args):
    """What ``evaluate`` asks (``tf_qa.signatures.Answerer``): the SavedModel in-process or in TensorFlow's C++
    runtime (``--native``), or a TF Serving target."""
    if not args.saved_model:
        from tf_qa.client import QAClient

        return QAClient(args.target, args.model_name, timeout=args.timeout)
    from tf_qa.saved_model.answerer import NativeAnswerer, SavedModelAnswerer

    version_dir = _version_dir(args.saved_model)
    if not args.native:
        return SavedModelAnswerer(version_dir)
    from tf_qa.saved_model.native import NativeError, NativeUnavailable

    try:
        return NativeAnswerer(version_dir)
    except (NativeUnavailable, NativeError) as error:
        raise CommandError(f"--native: {error}", code=error.code) from None


def _evaluation_questions(args, path: str | None = None) -> list:
    """The questions of ``path`` (default ``--squad``; ``tf_qa.questions`` reads it), only those of ``--articles``
    when given, then the first ``--limit``."""
    from tf_qa.questions import read_questions

    path = path or args.squad
    questions = read_questions(path)
    if args.articles:
        unknown = sorted(set(args.articles) - {q.title for q in questions})
        if unknown:
            raise CommandError(f"--articles: {path} has no article titled {', '.join(unknown)}")
        questions = [q for q in questions if q.title in set(args.articles)]
    return questions[: args.limit]


def _evaluate(args) -> int:
    from tf_qa import squad

    if args.native and not args.saved_model:
        raise UsageError("--native runs a --saved-model")
    questions = _evaluation_questions(args)
    if args.predictions:
        _write_text(args.predictions, "")  # an unwritable file is refused before the questions are asked
    unanswerable = any(not q.answers for q in questions)
    predictions = {}
    with _answerer(args) as answerer, console.progress(len(questions), "answering") as progress:
        for begin in range(0, len(questions), args.batch_size):
            batch = questions[begin : begin + args.batch_size]
            results = answerer.answer_batch(
                [q.question for q in batch], [q.context for q in batch], handle_impossible_answer=unanswerable
            )
            predictions.update({q.id: result["answer"] if result else "" for q, result in zip(batch, results)})
            progress.update(len(batch))
    result = squad.evaluate(questions, predictions)
    kind = "SQuAD v2.0 (with unanswerable questions)" if unanswerable else "SQuAD v1.1"
    print(f"{kind}: {result['total']} questions  exact match {result['exact_match']:.2f}  F1 {result['f1']:.2f}")
    if args.json:
        print(json.dumps(result))
    if args.predictions:
        _write_text(args.predictions, json.dumps(predictions, ensure_ascii=False, indent=1) + "\n")
    return 0


def _compare(args) -> int:
    from tf_qa import compare

    try:
        sides = [compare.parse_side(text, args.target, args.model_name) for text in (args.baseline, args.candidate)]
    except ValueError as error:
        raise UsageError(str(error)) from None
    try:
        questions = _evaluation_questions(args, args.input)
    except OSError as error:
        raise CommandError(f"cannot read --input {args.input}: {error.strerror or error}") from None
    except ValueError as error:
        raise CommandError(str(error)) from None
    if not questions:
        raise CommandError(f"--input {args.input} has no questions")
    baseline, candidate = (compare.answerer_for(side, args.timeout) for side in sides)
    print(f"comparing {args.baseline} (baseline) with {args.candidate} (candidate) on {len(questions)} questions")
    with baseline, candidate, console.progress(len(questions), "asking both") as progress:
        results = compare.ask_both(questions, baseline, candidate, args.batch_size, progress)
    report = compare.report(questions, *results)
    _print_comparison(args, report)
    failures = compare.verdict(report, args.min_agreement, args.max_f1_drop)
    for failure in failures:
        print(f"FAIL: {failure}")
    print("the candidate fails the gate" if failures else "the candidate passes the gate")
    return 1 if failures else 0


def _print_comparison(args, report: dict) -> None:
    changed, total = len(report["changed"]), report["questions"]
    print(f"agreement {report['agreement']:.2%} ({total - changed} of {total} answers identical)")
    for name in ("baseline", "candidate"):
        side = report[name]
        scores = f"  exact match {side['exact_match']:.2f}  F1 {side['f1']:.2f}" if "f1" in side else ""
        print(f"{name:9} {getattr(args, name)}:{scores}  p50 {side['p50_ms']:.1f} ms  p99 {side['p99_ms']:.1f} ms")
    for item in report["changed"][: args.show]:
        print(f"  changed {item['id']}: {item['baseline']!r} -> {item['candidate']!r}  ({item['question']})")
    if changed > args.show:
        print(f"  ... and {changed - args.show} more (--show, --json)")
    if args.json:
        print(json.dumps(report, ensure_ascii=False))


def _write_text(path: str, text: str) -> None:
    """Writes ``text`` to ``path``; CommandError naming the file when it cannot be written."""
    try:
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as error:
        raise CommandError(f"cannot write {path}: {error.strerror or error}") from None


def _bench(args) -> int:
    """Runs ``benchmarks/bench.py`` of the source checkout this package was installed from (pip install -e)."""
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"
    if not script.is_file():
        raise CommandError(f"the benchmark is benchmarks/bench.py of a source checkout; {script} does not exist")
    return subprocess.call([sys.executable, str(script), *args.bench_args])


def _validate(args) -> int:
    from tf_qa.saved_model.validate import validate_saved_model

    report = validate_saved_model(_version_dir(args.path))
    for line in report.lines:
        print(line)
    print(
        "fits TensorFlow Serving"
        if report.ok
        else f"does NOT fit TensorFlow Serving: {len(report.problems)} problem(s)"
    )
    return 0 if report.ok else 1


def _serve(args) -> int:
    from tf_qa.saved_model.allocator import describe as describe_allocator
    from tf_qa.server.model_server import ModelServer
    from tf_qa.server.options import ServeOptions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        options = ServeOptions.from_namespace(args)
    except ValueError as error:
        raise UsageError(str(error)) from None
    try:
        server = ModelServer(options).start()
    except (RuntimeError, OSError) as error:
        raise CommandError(str(error)) from None
    rest = f", REST on {options.host}:{server.rest_port}" if server.rest_port else ""
    models = "; ".join(
        f"{name} versions {repository.statuses()}" + (f" labels {repository.labels}" if repository.labels else "")
        for name, repository in server.repositories.items()
    )
    logging.getLogger("tf_qa.server").info("memory allocator: %s", describe_allocator())
    print(f"serving {models} on {options.host}:{server.port}{rest}", flush=True)
    server.wait()
    return 0


def _ask(args) -> int:
    from tf_qa.client import QAClient

    context = _read_text(args.context_file, "--context-file") if args.context_file else args.context
    try:
        with QAClient(args.target, args.model_name, timeout=args.timeout) as client:
            result = client.answer(
                args.question,
                context,
                top_k=args.top_k,
                max_answer_len=args.max_answer_len,
                handle_impossible_answer=args.handle_impossible_answer,
            )
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    for rank, answer in enumerate(result if isinstance(result, list) else [result], 1):
        print(f"{rank}. {answer['answer']!r}  score {answer['score']:.4f}  chars {answer['start']}:{answer['end']}")
    return 0


def _batch(args) -> int:
    from tf_qa.batch import run
    from tf_qa.beam import SavedModelHandler, ServingHandler

    if args.saved_model:
        handler = SavedModelHandler(_version_dir(args.saved_model))
    else:
        if not args.model_name:
            raise UsageError("batch --target needs --model-name")
        handler = ServingHandler(args.target, args.model_name, timeout=args.timeout)
    import glob

    rotated_log = not args.input.endswith((".json", ".jsonl")) and glob.glob(f"{glob.escape(args.input)}-*")
    try:  # a clear error before Beam starts; the records themselves are read by the pipeline
        if not rotated_log:
            open(args.input, "rb").close()
    except OSError as error:
        raise CommandError(f"cannot read --input {args.input}: {error.strerror or error}") from None
    root, level = logging.getLogger(), logging.getLogger().level
    if not args.verbose:
        root.setLevel(logging.ERROR)  # Beam warns through the root logger; for this command only
    dead_letter = args.dead_letter or f"{args.output}.errors.jsonl"
    print(f"[batch] {args.input} -> {args.output} (dead letters: {dead_letter})", flush=True)
    try:
        counts = run(args.input, handler, args.output, dead_letter, args.beam_args)
    finally:
        root.setLevel(level)
    print(f"answered {counts['answered']}, dead-lettered {counts['refused']}")
    return 0


#: Each command's function; its arguments are defined in ``tf_qa.arguments.build_parser``.
COMMANDS = {
    "export": _export,
    "validate": _validate,
    "serve": _serve,
    "ask": _ask,
    "evaluate": _evaluate,
    "compare": _compare,
    "bench": _bench,
    "batch": _batch,
}


def _start_again_on_tcmalloc() -> None:
    """Starts this command again with TCMalloc preloaded, where it is installed and ``LD_PRELOAD`` is unset
    (``tf_qa.saved_model.allocator``): a process picks its allocator when it starts."""
    from tf_qa.saved_model.allocator import preload_environment

    env = preload_environment(os.environ)
    if "LD_PRELOAD" in env and "LD_PRELOAD" not in os.environ:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, "-m", "tf_qa.cli", *sys.argv[1:]], env)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(__doc__)
    # argparse's REMAINDER does not take arguments that start with "-" right after the subcommand, so the bench's
    # own options arrive as unknown arguments; every other command refuses them.
    from_shell = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    beam_args = []
    if argv[:1] == ["batch"] and "--" in argv:  # tf-qa batch ... -- BEAM_PIPELINE_OPTIONS
        argv, beam_args = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    args, unknown = parser.parse_known_args(argv)
    if args.command == "serve" and from_shell:  # not a caller in this process: that one keeps running
        _start_again_on_tcmalloc()
    args.beam_args = beam_args
    if args.command == "bench":
        args.bench_args = unknown + args.bench_args
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if getattr(args, "target", None) and args.command == "evaluate" and not args.model_name:
        parser.error("evaluate --target needs --model-name")
    if args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
    else:
        console.quiet()
    try:
        return COMMANDS[args.command](args)
    except TFQAError as error:
        print(f"tf-qa {args.command}: {error}", file=sys.stderr)
        return exit_code(error)
    except KeyboardInterrupt:
        print(f"tf-qa {args.command}: interrupted", file=sys.stderr)
        return EXIT_CODES[StatusCode.CANCELLED]
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in _FULL_INSTALL_MODULES:
            raise
        print(
            f"tf-qa {args.command}: needs the full install, pip install 'tf-qa[full]' ({error.name} is not "
            "installed; the client install runs ask and evaluate --target)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
