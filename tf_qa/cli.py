"""``tf-qa``: export a checkpoint for TF Serving, serve it, ask it questions.

    tf-qa export --model distilbert-base-uncased-distilled-squad --output export/distilbert-squad
    tf-qa validate export/distilbert-squad/1
    tf-qa serve --model-base-path export/distilbert-squad --model-name distilbert-squad --port 8500
    tf-qa evaluate --squad dev-v1.1.json --target localhost:8500 --model-name distilbert-squad
    tf-qa ask --target localhost:8500 --model-name distilbert-squad --question "..." --context "..."
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile

from tf_qa import console, defaults
from tf_qa.arguments import non_negative_float, non_negative_int, port_number, positive_float, positive_int
from tf_qa.graph.limits import RequestLimits, export_flag
from tf_qa.graph.options import ExportOptions, flag_fields

# oneDNN runs the fused kernels the model is written for (MatMul+BiasAdd+GELU, LayerNorm); TensorFlow turns it on
# by default only on CPUs with AVX512_VNNI, AVX512_BF16 or AMX. Set before TensorFlow is imported; 0 opts out.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


class CommandError(Exception):
    """A user's mistake or an impossible request: one line on stderr and an exit code, never a traceback."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def _read_file(path: str, what: str, *, text: bool) -> str | bytes:
    """The file's contents (UTF-8 text, or bytes); CommandError naming ``what`` when it cannot be read."""
    try:
        with open(path, "r" if text else "rb", encoding="utf-8" if text else None) as handle:
            return handle.read()
    except OSError as error:
        raise CommandError(f"cannot read {what} {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise CommandError(f"{what} {path} is not UTF-8 text") from None


def _version_dir(path: str) -> str:
    """``path`` if it is a version folder, else its newest version (said on stderr)."""
    from tf_qa.server.repository import resolve_version_dir

    try:
        version_dir, note = resolve_version_dir(path)
    except FileNotFoundError as error:
        raise CommandError(str(error)) from None
    if note:
        print(note, file=sys.stderr)
    return version_dir


def _export(args) -> int:
    from tf_qa.saved_model.export import ExportError, export_model

    checkpoint = args.model
    if args.demo:
        from tf_qa.checkpoints import make_random_checkpoint

        print("WARNING: exporting a random-weights DEMO model: its answers are meaningless.", file=sys.stderr)
        checkpoint = make_random_checkpoint(tempfile.mkdtemp(prefix="tf-qa-demo-"), seed=0)
    elif not checkpoint:
        raise CommandError("--model or --demo is required", code=2)
    try:
        limits = RequestLimits(**{name: getattr(args, name) for name in RequestLimits().as_dict()})
        options = ExportOptions(**{field.name: getattr(args, field.name) for field in flag_fields()}, limits=limits)
    except ValueError as error:
        raise CommandError(str(error), code=2) from None
    try:
        export_model(checkpoint, args.output, version=args.version, force=args.force, from_pt=args.from_pt,
                     model_name=args.model_name, options=options)
    except ExportError as error:
        raise CommandError(str(error)) from None
    except KeyboardInterrupt:
        raise CommandError("interrupted; nothing was published", code=130) from None
    return 0


def _saved_model_answerer(path: str, handle_impossible_answer: bool):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    from tf_qa.graph.model import run_top_k_signature

    signature = tf.saved_model.load(_version_dir(path)).signatures[defaults.TOP_K_SIGNATURE]

    def answer(questions, contexts):
        out = run_top_k_signature(signature, questions, contexts, handle_impossible_answer=handle_impossible_answer)
        return [a.decode("utf-8") for a in out["answer"][:, 0]]

    return answer, lambda: None


def _evaluate(args) -> int:
    from tqdm import tqdm

    from tf_qa import squad
    from tf_qa.errors import TFQAError

    try:
        questions = squad.load_squad(args.squad)[: args.limit]
    except squad.SquadFormatError as error:
        raise CommandError(str(error)) from None
    unanswerable = any(not q.answers for q in questions)
    if args.saved_model:
        answer, close = _saved_model_answerer(args.saved_model, unanswerable)
    else:
        from tf_qa.client import QAClient

        client = QAClient(args.target, args.model_name, timeout=args.timeout)
        answer = lambda qs, cs: [r["answer"] for r in client.answer_batch(  # noqa: E731
            qs, cs, handle_impossible_answer=unanswerable)]
        close = client.close
    predictions = {}
    try:
        with tqdm(total=len(questions), unit="q", desc="answering") as progress:
            for begin in range(0, len(questions), args.batch_size):
                batch = questions[begin : begin + args.batch_size]
                for question, text in zip(batch, answer([q.question for q in batch], [q.context for q in batch])):
                    predictions[question.id] = text
                progress.update(len(batch))
    except TFQAError as error:
        raise CommandError(str(error)) from None
    finally:
        close()
    result = squad.evaluate(questions, predictions)
    kind = "SQuAD v2.0 (with unanswerable questions)" if unanswerable else "SQuAD v1.1"
    print(f"{kind}: {result['total']} questions  exact match {result['exact_match']:.2f}  F1 {result['f1']:.2f}")
    if args.json:
        print(json.dumps(result))
    return 0


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
    print("fits TensorFlow Serving" if report.ok
          else f"does NOT fit TensorFlow Serving: {len(report.problems)} problem(s)")
    return 0 if report.ok else 1


def _serve(args) -> int:
    from tf_qa.server.model_server import ModelServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    credentials = None
    if args.ssl_cert or args.ssl_key:
        if not (args.ssl_cert and args.ssl_key):
            raise CommandError("--ssl-cert and --ssl-key go together", code=2)
        import grpc

        pair = (_read_file(args.ssl_key, "--ssl-key", text=False), _read_file(args.ssl_cert, "--ssl-cert", text=False))
        try:
            credentials = grpc.ssl_server_credentials([pair])
        except (ValueError, RuntimeError) as error:
            raise CommandError(f"--ssl-cert/--ssl-key: {error}") from None
    batching = None
    if args.enable_batching:
        batching = {"max_batch_size": args.max_batch_size, "timeout": args.batch_timeout_micros / 1e6,
                    "num_threads": args.num_batch_threads}
    try:
        server = ModelServer(args.model_base_path, args.model_name, port=args.port, host=args.host,
                             versions=args.versions, poll_seconds=args.poll_seconds,
                             credentials=credentials, batching=batching, rest_port=args.rest_api_port,
                             max_in_flight=args.max_in_flight, max_request_bytes=args.max_request_bytes,
                             rest_timeout=args.rest_api_timeout_in_ms / 1000).start()
    except (RuntimeError, OSError) as error:
        raise CommandError(str(error)) from None
    rest = f", REST on {args.host}:{server.rest_port}" if server.rest_port else ""
    print(f"serving {args.model_name} versions {server.repository.statuses()} on {args.host}:{server.port}{rest}",
          flush=True)
    server.wait()
    return 0


def _ask(args) -> int:
    from tf_qa.client import QAClient
    from tf_qa.errors import TFQAError

    context = _read_file(args.context_file, "--context-file", text=True) if args.context_file else args.context
    try:
        with QAClient(args.target, args.model_name, timeout=args.timeout) as client:
            result = client.answer(args.question, context, top_k=args.top_k, max_answer_len=args.max_answer_len,
                                   handle_impossible_answer=args.handle_impossible_answer)
    except TFQAError as error:
        raise CommandError(str(error)) from None
    except ValueError as error:
        raise CommandError(str(error), code=2) from None
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    for rank, answer in enumerate(result if isinstance(result, list) else [result], 1):
        print(f"{rank}. {answer['answer']!r}  score {answer['score']:.4f}  chars {answer['start']}:{answer['end']}")
    return 0


def _add_export(commands, common) -> None:
    export = commands.add_parser("export", parents=[common],
                                 help="export a DistilBERT QA checkpoint for TF Serving")
    export.add_argument("--model", help="hub name or local folder of the checkpoint")
    export.add_argument("--demo", action="store_true", help="export a small random-weights demo model instead")
    export.add_argument("--output", required=True, help="model repository folder, e.g. export/NAME")
    export.add_argument("--model-name", help="model name in the warmup requests (default: the output folder's name)")
    export.add_argument("--version", type=positive_int, help="version number (default: the next one)")
    export.add_argument("--force", action="store_true", help="overwrite an existing version")
    export.add_argument("--from-pt", action="store_true", help="the checkpoint has PyTorch weights")
    for field in flag_fields():  # one flag per export option (tf_qa.graph.options)
        minimum, choices = field.metadata["minimum"], field.metadata["choices"]
        export.add_argument(export_flag(field.name), default=field.default, help=field.metadata["help"],
                            choices=choices or None,
                            type={0: non_negative_int, 1: positive_int}.get(minimum) if minimum is not None else str)
    for name, default in RequestLimits().as_dict().items():
        export.add_argument(export_flag(name), type=positive_int, default=default,
                            help=f"request limit checked in the graph (default {default}; see README, Limits)")
    export.set_defaults(run=_export)


def _add_validate(commands, common) -> None:
    validate = commands.add_parser("validate", parents=[common],
                                   help="check that a SavedModel fits TensorFlow Serving")
    validate.add_argument("path", help="a version folder, e.g. export/NAME/1")
    validate.set_defaults(run=_validate)


def _add_serve(commands, common) -> None:
    serve = commands.add_parser("serve", parents=[common],
                                help="serve an exported model over TF Serving's gRPC and REST APIs (development)")
    serve.add_argument("--model-base-path", required=True)
    serve.add_argument("--model-name", required=True)
    serve.add_argument("--port", type=port_number, default=8500)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--rest-api-port", type=port_number, help="also serve TF Serving's REST API on this port")
    serve.add_argument("--versions", type=positive_int, nargs="*", help="versions to serve (default: the newest)")
    serve.add_argument("--poll-seconds", type=non_negative_float, default=2.0,
                       help="how often to look for new versions")
    serve.add_argument("--enable-batching", action="store_true",
                       help="merge concurrent requests into batches (as TF Serving's --enable_batching)")
    serve.add_argument("--max-batch-size", type=positive_int, default=16)
    serve.add_argument("--batch-timeout-micros", type=non_negative_int, default=0,
                       help="how long a request waits for others to join its batch "
                            "(default 0, as in serving/batching_parameters.txt)")
    serve.add_argument("--num-batch-threads", type=positive_int, default=2)
    serve.add_argument("--max-in-flight", type=positive_int, default=defaults.DEFAULT_MAX_IN_FLIGHT,
                       help="Predict requests at once (gRPC and REST); more are refused at once with "
                            "RESOURCE_EXHAUSTED / HTTP 429 (default %(default)s)")
    serve.add_argument("--max-request-bytes", type=positive_int, default=defaults.DEFAULT_MAX_REQUEST_BYTES,
                       help="largest gRPC request message and REST body (default %(default)s)")
    serve.add_argument("--rest-api-timeout-in-ms", type=positive_int, default=int(defaults.DEFAULT_REST_TIMEOUT * 1000),
                       help="time a REST request may run, as TF Serving's flag (default %(default)s); gRPC requests "
                            "run until their own deadline")
    serve.add_argument("--ssl-cert", help="PEM certificate chain: serve TLS")
    serve.add_argument("--ssl-key", help="PEM private key of --ssl-cert")
    serve.set_defaults(run=_serve)


def _add_ask(commands, common) -> None:
    ask = commands.add_parser("ask", parents=[common], help="ask a served model a question")
    ask.add_argument("--target", required=True, help="host:port (comma-separated for several)")
    ask.add_argument("--model-name", required=True)
    ask.add_argument("--question", required=True)
    source = ask.add_mutually_exclusive_group(required=True)
    source.add_argument("--context")
    source.add_argument("--context-file")
    ask.add_argument("--top-k", type=positive_int, default=1)
    ask.add_argument("--max-answer-len", type=positive_int, default=defaults.DEFAULT_MAX_ANSWER_LEN)
    ask.add_argument("--handle-impossible-answer", action="store_true")
    ask.add_argument("--timeout", type=positive_float, default=30.0)
    ask.add_argument("--json", action="store_true", help="print the raw result as JSON")
    ask.set_defaults(run=_ask)


def _add_evaluate(commands, common) -> None:
    evaluate = commands.add_parser("evaluate", parents=[common], help="exact match and F1 on a SQuAD-format file")
    evaluate.add_argument("--squad", required=True, help="SQuAD v1.1 or v2.0 JSON file")
    where = evaluate.add_mutually_exclusive_group(required=True)
    where.add_argument("--target", help="host:port of a server (with --model-name)")
    where.add_argument("--saved-model", help="a SavedModel version folder, run in-process")
    evaluate.add_argument("--model-name", help="the served model's name")
    evaluate.add_argument("--batch-size", type=positive_int, default=16)
    evaluate.add_argument("--limit", type=positive_int, help="only the first N questions")
    evaluate.add_argument("--timeout", type=positive_float, default=120.0)
    evaluate.add_argument("--json", action="store_true", help="also print the figures as JSON")
    evaluate.set_defaults(run=_evaluate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tf-qa", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true",
                        help="also show TensorFlow's, Keras' and transformers' own messages")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_export, _add_validate, _add_serve, _add_ask, _add_evaluate):
        add(commands, common)
    bench = commands.add_parser("bench", help="benchmark against the transformers pipeline (see benchmarks/)",
                                add_help=False)
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(run=_bench, verbose=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # argparse's REMAINDER does not take arguments that start with "-" right after the subcommand, so the bench's
    # own options arrive as unknown arguments; every other command refuses them.
    args, unknown = parser.parse_known_args(argv)
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
        return args.run(args)
    except CommandError as error:
        print(f"tf-qa {args.command}: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        print(f"tf-qa {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
