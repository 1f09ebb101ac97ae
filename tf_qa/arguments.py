"""The command line's arguments: each command's parser (``build_parser``) and the value types it uses, which refuse
a value out of range with a usage error naming the value, never a traceback.

Example:

>>> parser = argparse.ArgumentParser(prog="demo")
>>> _ = parser.add_argument("--questions", type=positive_int)
>>> parser.parse_args(["--questions", "5"]).questions
5
"""

from __future__ import annotations

import argparse
import dataclasses

from tf_qa import defaults
from tf_qa.graph.limits import RequestLimits, export_flag
from tf_qa.graph.options import flag_fields
from tf_qa.server.options import ServeOptions, serve_flag


def _number(kind, minimum):
    """An argparse type: a ``kind`` (int or float) of at least ``minimum``, refused with a usage error otherwise."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}; got {text}")
        return value

    parse.__name__ = f"{kind.__name__} >= {minimum}"
    return parse


positive_int = _number(int, 1)
non_negative_int = _number(int, 0)
positive_float = _number(float, 1e-9)
non_negative_float = _number(float, 0.0)


def fraction(text: str) -> float:
    """An argparse type: a share between 0 and 1 (a percentage such as 99% is also read)."""
    value = non_negative_float(text.rstrip("%"))
    value = value / 100 if text.endswith("%") else value
    if value > 1:
        raise argparse.ArgumentTypeError(f"a share is at most 1 (or 100%); got {text}")
    return value


def port_number(text: str) -> int:
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535; got {value}")
    return value


def _add_export(commands, common) -> None:
    export = commands.add_parser("export", parents=[common], help="export a DistilBERT QA checkpoint for TF Serving")
    export.add_argument("--model", help="hub name or local folder of the checkpoint")
    export.add_argument(
        "--demo",
        action="store_true",
        help="export the trained demo model (all-MiniLM-L6-v2 fine-tuned on SQuAD) instead",
    )
    export.add_argument("--output", required=True, help="model repository folder, e.g. export/NAME")
    export.add_argument("--model-name", help="model name in the warmup requests (default: the output folder's name)")
    export.add_argument("--version", type=positive_int, help="version number (default: the next one)")
    export.add_argument("--force", action="store_true", help="overwrite an existing version")
    export.add_argument("--from-pt", action="store_true", help="the checkpoint has PyTorch weights")
    for field in flag_fields():  # one flag per export option (tf_qa.graph.options)
        minimum, choices = field.metadata["minimum"], field.metadata["choices"]
        export.add_argument(
            export_flag(field.name),
            default=field.default,
            help=field.metadata["help"],
            choices=choices or None,
            type={0: non_negative_int, 1: positive_int}.get(minimum) if minimum is not None else str,
        )
    export.add_argument(
        "--calibration",
        metavar="FILE",
        help="int8: questions to calibrate its ranges on (SQuAD .json, .jsonl, or a request log; --demo: its "
        "training articles by default)",
    )
    export.add_argument(
        "--calibration-questions",
        type=positive_int,
        default=defaults.DEFAULT_CALIBRATION_QUESTIONS,
        help="int8: how many of them, a seeded sample (default %(default)s)",
    )
    for name, default in RequestLimits().as_dict().items():
        export.add_argument(
            export_flag(name),
            type=positive_int,
            default=default,
            help=f"request limit checked in the graph (default {default}; see README, Limits)",
        )


def _add_validate(commands, common) -> None:
    validate = commands.add_parser("validate", parents=[common], help="check that a SavedModel fits TensorFlow Serving")
    validate.add_argument("path", help="a version folder, e.g. export/NAME/1")


#: The argparse settings of each ``ServeOptions`` field kind.
_SERVE_KINDS = {
    "text": {},
    "port": {"type": port_number},
    "versions": {"type": positive_int, "nargs": "*"},
    "switch": {"action": "store_true"},
    "positive_int": {"type": positive_int},
    "non_negative_int": {"type": non_negative_int},
    "non_negative_float": {"type": non_negative_float},
}


def _add_serve(commands, common) -> None:
    serve = commands.add_parser(
        "serve", parents=[common], help="serve an exported model over TF Serving's gRPC and REST APIs (development)"
    )
    for field in dataclasses.fields(ServeOptions):  # one flag per serve option (tf_qa.server.options)
        required, kind = field.metadata["required"], field.metadata["kind"]
        default = {} if required or kind == "switch" else {"default": field.default}
        serve.add_argument(
            serve_flag(field.name), required=required, help=field.metadata["help"], **default, **_SERVE_KINDS[kind]
        )


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


def _add_evaluate(commands, common) -> None:
    evaluate = commands.add_parser("evaluate", parents=[common], help="exact match and F1 on a SQuAD-format file")
    evaluate.add_argument("--squad", required=True, help="SQuAD v1.1 or v2.0 JSON file")
    where = evaluate.add_mutually_exclusive_group(required=True)
    where.add_argument("--target", help="host:port of a server (with --model-name)")
    where.add_argument("--saved-model", help="a SavedModel version folder, run in-process")
    evaluate.add_argument(
        "--native", action="store_true", help="run --saved-model in TensorFlow's C++ runtime, as TF Serving does"
    )
    evaluate.add_argument("--model-name", help="the served model's name")
    evaluate.add_argument("--articles", nargs="+", metavar="TITLE", help="only the questions of these articles")
    evaluate.add_argument("--batch-size", type=positive_int, default=16)
    evaluate.add_argument("--limit", type=positive_int, help="only the first N questions")
    evaluate.add_argument("--timeout", type=positive_float, default=120.0)
    evaluate.add_argument("--json", action="store_true", help="also print the figures as JSON")
    evaluate.add_argument(
        "--predictions", metavar="FILE", help="also write the answers as SQuAD's evaluation script reads them"
    )


def _add_batch(commands, common) -> None:
    batch = commands.add_parser(
        "batch", parents=[common], help="answer a file of questions on Apache Beam (Beam options after --)"
    )
    batch.add_argument(
        "--input",
        required=True,
        help="JSON Lines (.jsonl) of {id, question, context}, SQuAD (.json) or a request log (tf-qa serve's)",
    )
    batch.add_argument("--output", required=True, help="JSON Lines of {id, answer, score, start, end}")
    batch.add_argument(
        "--dead-letter", help="JSON Lines of the records that could not be answered (default: OUTPUT.errors.jsonl)"
    )
    where = batch.add_mutually_exclusive_group(required=True)
    where.add_argument("--saved-model", help="a SavedModel version folder, loaded in each Beam worker")
    where.add_argument("--target", help="host:port of a TF Serving server (with --model-name)")
    batch.add_argument("--model-name", help="the served model's name")
    batch.add_argument("--timeout", type=positive_float, default=120.0, help="deadline of each request to --target")


def _add_compare(commands, common) -> None:
    compare = commands.add_parser(
        "compare",
        parents=[common],
        help="the canary check: the same questions to two versions, labels, targets or exports; exit 1 past the gates",
    )
    compare.add_argument(
        "--input",
        required=True,
        help="SQuAD (.json, gold answers: EM/F1), JSON Lines (.jsonl: {id, question, context[, answers]}) or a "
        "request log (a PredictionLog TFRecord file, or the filename_prefix of its rotated files)",
    )
    for side, example in (("baseline", "label:stable"), ("candidate", "version:2")):
        compare.add_argument(
            f"--{side}",
            required=True,
            help=f"label:NAME, version:N (of --target), HOST:PORT or a SavedModel folder, e.g. {example}",
        )
    compare.add_argument("--target", help="host:port of the server label: and version: sides name")
    compare.add_argument("--model-name", help="the served model's name (for the sides on a server)")
    compare.add_argument("--articles", nargs="+", metavar="TITLE", help="only the questions of these SQuAD articles")
    compare.add_argument("--limit", type=positive_int, help="only the first N questions")
    compare.add_argument("--batch-size", type=positive_int, default=1, help="questions per request (default 1)")
    compare.add_argument("--timeout", type=positive_float, default=120.0)
    compare.add_argument(
        "--min-agreement", type=fraction, default=0.0, help="fail (exit 1) under this share of identical answers"
    )
    compare.add_argument(
        "--max-f1-drop", type=non_negative_float, help="fail (exit 1) when the candidate's F1 is lower by more"
    )
    compare.add_argument("--show", type=non_negative_int, default=10, help="changed answers to print (default 10)")
    compare.add_argument("--json", action="store_true", help="also print the whole report as JSON")


#: What ``tf-qa --version`` reports beside tf-qa, as ``tensorflow_model_server --version`` names its TensorFlow.
VERSIONED_PACKAGES = ("tensorflow", "tensorflow-text", "tensorflow-serving-api", "transformers", "grpcio", "protobuf")


def version_text() -> str:
    """tf-qa's version, then each package's (``not installed`` in the client-only install); reads the installed
    packages' metadata, importing none of them."""
    from importlib import metadata

    from tf_qa import __version__

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return "\n".join([f"tf-qa {__version__}"] + [f"{name} {installed(name)}" for name in VERSIONED_PACKAGES])


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """The ``tf-qa`` parser; ``args.command`` names the command to run."""
    parser = argparse.ArgumentParser(
        prog="tf-qa", description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--version", action="version", version=version_text(), help="tf-qa's version and the libraries it runs with"
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--verbose", action="store_true", help="also show TensorFlow's, Keras' and transformers' own messages"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_export, _add_validate, _add_serve, _add_ask, _add_evaluate, _add_compare, _add_batch):
        add(commands, common)
    bench = commands.add_parser(
        "bench", help="benchmark against the transformers pipeline (see benchmarks/)", add_help=False
    )
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(verbose=False)
    return parser
