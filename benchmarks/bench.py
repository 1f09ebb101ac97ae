"""Benchmark: tf-qa against the transformers pipeline and ONNX Runtime, same questions, same weights, end to end.

One run measures, with ``--model demo`` (the default) the trained demo model on the first N questions of the SQuAD
v1.1 dev articles it never saw, with their exact match and F1 beside the speed of every row that answers one
question at a time; with ``--model base`` a DistilBERT-base-sized checkpoint made with a fixed seed (random
weights: speed at the reference model's size, no accuracy) on the first N SQuAD v1.1 dev questions (synthetic
questions where the data is absent):

* the transformers pipeline: PyTorch at batch 1 and 16, TensorFlow at batch 1 (it ignores batch_size);
* ONNX Runtime, fp32 and int8 (Optimum's CPU path: exported, fused, dynamically quantized), inside the pipeline's
  own tokenization and span decoding, batch 1 and 16; tf-qa's ratio to the best of them;
* the tf-qa SavedModel called in-process, batch 1 and 16;
* the same rows for the opt-in bf16 exports (``--matmul-dtype bfloat16``, with its blocks whole and in two
  parallel branches, ``--parallel-branches 2``; windows padded as the README advises for the CPU, 32 tokens with
  AMX and 8 without) and the int8 export (``--matmul-dtype int8 --parallel-branches 2``, calibrated on the demo
  model's training questions), and how often each one's top answer equals the fp32 export's;
* the export in TF Serving's two runtimes, batch 1 and 16: the Python TF1 session that ``tf-qa serve`` runs, and
  TensorFlow's C++ runtime (``tf_qa/saved_model/native.py``), what stock tensorflow_model_server runs, also over
  gRPC from a C++ front end (``tf_qa/server/native_grpc.py``, as stock TF Serving answers; where Debian's gRPC
  can be built against);
* tf-qa over gRPC through ``tf-qa serve`` (batching as in serving/platform_config.pbtxt): batch 1 (p50,
  p99), 16 per request, and 8 concurrent clients sending one question each; the first request after start
  against a warm one; the server's peak RSS;
* the machine's peak fp32 matmul GFLOP/s (TensorFlow), against which the model's achieved GFLOP/s is set;
* where a batch-1 question's time goes, stage by stage (``breakdown.py``), for each export over gRPC and for
  ONNX Runtime int8 in the pipeline, on the first ``--breakdown-questions`` questions;
* the last export at batch 1 in TensorFlow's C++ runtime, over the C++ gRPC front end and through ``tf-qa serve``,
  taking turns with ONNX Runtime int8 25 questions at a time (``grpc_overhead.py``): the rows above run one
  after another, and the machine's speed drifts between them.

With ``--load``, latency under load: 1, 4, 8 and 16 concurrent clients of one question per request, with and
without server batching, for each export. With ``--sweep-batching`` the gRPC rows are also run under each server
batching setting of ``BATCHING_SWEEP`` (about 7 more minutes). Each row runs in its own process. It prints a table
with ratios to the pipeline rows, and writes ``bench.json`` and ``latency_vs_length.png`` to the output folder.
The machine is noisy: ratios from one run are what count. Every run prints the CPU's name and its AVX-512, bf16,
VNNI and AMX flags.

    python benchmarks/bench.py --questions 300          # or, from a checkout: tf-qa bench --questions 300
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

from bench_setup import (
    BATCHING_ARGS,
    BATCHING_SWEEP,
    MODELS,
    distilbert_flops,
    load_questions,
    model_size,
    percentile,
    prepare,
    profile_exports,
    run_load_rows,
    run_server_rows,
)
from bench_workers import run_worker
from served import cpu_name

from tf_qa import console, squad
from tf_qa.arguments import non_negative_int, positive_int
from tf_qa.cpu import cpu_features
from tf_qa.defaults import DEFAULT_DOC_STRIDE, DEFAULT_MAX_SEQ_LEN
from tf_qa.saved_model.allocator import TCMALLOC, allocator_of, preload_environment

#: --exports: each export's options (``tf-qa export`` flags, as ``ExportOptions`` fields).
EXPORTS = {
    "fp32": {"matmul_dtype": "float32"},
    "bf16": {"matmul_dtype": "bfloat16"},
    "bf16x2": {"matmul_dtype": "bfloat16", "parallel_branches": 2},
    "int8x2": {"matmul_dtype": "int8", "parallel_branches": 2},
}
#: Row labels by export.
LABELS = {"fp32": "tf-qa", "bf16": "tf-qa bf16", "bf16x2": "tf-qa bf16 2-branch", "int8x2": "tf-qa int8 2-branch"}


def exports_for_this_cpu(names: list[str]) -> dict[str, dict]:
    """``EXPORTS`` of ``names``, the bf16 ones padded as the README's "which export where" advises for this CPU."""
    multiple = cpu_features().bf16_window_length_multiple
    bf16 = [name for name in names if EXPORTS[name]["matmul_dtype"] == "bfloat16"]
    if bf16:
        report(f"bf16 exports: windows padded to a multiple of {multiple} tokens on this CPU")
    return {name: {**EXPORTS[name], **({"window_length_multiple": multiple} if name in bf16 else {})} for name in names}


def report(line: str) -> None:
    print(line, flush=True)


def window_lengths_of(checkpoint: str, cases) -> list[list[int]]:
    """Tokens in each window of each question, as the pipeline cuts them."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    return [
        [
            len(ids)
            for ids in tokenizer(
                question,
                context,
                truncation="only_second",
                max_length=DEFAULT_MAX_SEQ_LEN,
                stride=DEFAULT_DOC_STRIDE,
                return_overflowing_tokens=True,
            )["input_ids"]
        ]
        for question, context in cases
    ]


def pipeline_rows(checkpoint: str, checkpoint_pt: str, cases) -> dict[str, dict]:
    rows = {}
    try:
        import torch  # noqa: F401

        for batch in (1, 16):
            report(f"pipeline PyTorch bs{batch} ...")
            rows[f"pipeline PyTorch bs{batch}"] = run_worker(
                "pipeline", {"framework": "pt", "checkpoint": checkpoint_pt, "cases": cases, "batch_size": batch}
            )
    except ImportError:
        report("PyTorch is not installed (pip install 'tf-qa[bench]'): PyTorch pipeline rows skipped")
    report("pipeline TF bs1 ...")
    rows["pipeline TF bs1"] = run_worker(
        "pipeline", {"framework": "tf", "checkpoint": checkpoint, "cases": cases, "batch_size": 1}
    )
    return rows


def onnx_rows(checkpoint_pt: str, workdir: Path, cases) -> dict[str, dict]:
    """ONNX Runtime rows, fp32 and int8 (dynamic quantization), end to end; none without onnxruntime and torch."""
    if not (importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("torch")):
        report("onnxruntime or torch is not installed (pip install 'tf-qa[bench]'): ONNX Runtime rows skipped")
        return {}
    # Reused when present, as prepare() reuses the checkpoint and the exports.
    models = {precision: str(workdir / "onnx" / f"{precision}.onnx") for precision in ("fp32", "int8")}
    if not all(Path(path).exists() for path in models.values()):
        report("exporting the PyTorch checkpoint to ONNX (fused, and int8 dynamic quantization) ...")
        (workdir / "onnx").mkdir(exist_ok=True)
        models = run_worker("onnx_export", {"checkpoint_pt": checkpoint_pt, "output": str(workdir / "onnx")})
    rows = {}
    for precision, path in models.items():
        for batch in (1, 16):
            report(f"ONNX Runtime {precision} bs{batch} ...")
            config = {"onnx": path, "checkpoint_pt": checkpoint_pt, "cases": cases, "batch_size": batch}
            rows[f"ONNX Runtime {precision} bs{batch}"] = run_worker("onnx", config)
    return rows


def runtime_rows(label: str, version_dir: str, cases) -> dict[str, dict]:
    """The export in TF Serving's runtimes (the TF1 session, the native C++ runtime) at batch 1 and 16, the
    native one at batch 16 without the platform config's session options (what they are worth), and the native
    one over gRPC from the C++ front end at batch 1 and 16."""
    rows = {}
    for runtime, name in (("session", "Python TF1 session"), ("native", "native C++ runtime")):
        for batch in (1, 16):
            report(f"{label} {name} bs{batch} ...")
            config = {"runtime": runtime, "saved_model": version_dir, "cases": cases, "batch_size": batch}
            rows[f"{label} {name} bs{batch}"] = run_worker("runtime", config)
    report(f"{label} native C++ runtime bs16, TensorFlow's default session options ...")
    config = {
        "runtime": "native",
        "saved_model": version_dir,
        "cases": cases,
        "batch_size": 16,
        "default_session": True,
    }
    rows[f"{label} native C++ runtime bs16, default session options"] = run_worker("runtime", config)
    report(f"{label} over gRPC from the C++ front end (tf_qa/server/native_grpc.py) bs1 and bs16 ...")
    native_grpc = run_worker("native_grpc", {"saved_model": version_dir, "cases": cases})
    if "unavailable" in native_grpc:
        report(f"  skipped: {native_grpc['unavailable']}")
    else:
        rows[f"{label} gRPC C++ front end bs1"] = native_grpc["bs1"]
        rows[f"{label} gRPC C++ front end bs16"] = native_grpc["bs16"]
    return rows


def tf_qa_rows(repositories: dict[str, str], cases) -> tuple[dict[str, dict], dict[str, dict]]:
    """In-process and gRPC rows of each export; also the gRPC runs' extra figures, by export."""
    rows, grpc_by_export = {}, {}
    for label, repo in repositories.items():
        for batch in (1, 16):
            report(f"{label} SavedModel in-process bs{batch} ...")
            rows[f"{label} in-process bs{batch}"] = run_worker(
                "saved_model", {"saved_model": f"{repo}/1", "cases": cases, "batch_size": batch}
            )
        rows.update(runtime_rows(label, f"{repo}/1", cases))
        report(f"{label} over gRPC (tf-qa serve " + " ".join(BATCHING_ARGS) + ") ...")
        grpc = grpc_by_export[label] = run_server_rows(repo, cases, BATCHING_ARGS)
        rows[f"{label} gRPC bs1"], rows[f"{label} gRPC bs16"] = grpc["bs1"], grpc["bs16"]
        rows[f"{label} gRPC 8 clients"] = grpc["concurrent8"]
    return rows, grpc_by_export


def accuracy(spans: list, cases, golds) -> dict:
    """SQuAD exact match and F1 of a row's top answers, given as character spans of each context."""
    predictions = {str(i): context[start:end] for i, ((_, context), (start, end)) in enumerate(zip(cases, spans))}
    questions = [squad.SquadQuestion(str(i), "", "", tuple(gold)) for i, gold in enumerate(golds)]
    return squad.evaluate(questions, predictions)


def table_rows(rows: dict[str, dict], cases, golds, useful_gflop: float, peak: float) -> list[dict]:
    """One entry per row: q/s, latency percentiles, GFLOP/s, EM/F1 where it answered one question at a time
    and gold answers exist, and the ratios to the pipeline rows."""
    table, n = [], len(cases)
    for name, row in rows.items():
        entry = {
            "row": name,
            "questions_per_s": n / row["seconds"],
            "gflops": useful_gflop / row["seconds"],
            "peak_fraction": useful_gflop / row["seconds"] / peak,
        }
        if golds and row.get("spans"):
            entry.update(accuracy(row["spans"], cases, golds))
        if row.get("latencies"):
            entry.update(p50_ms=1000 * percentile(row["latencies"], 50), p99_ms=1000 * percentile(row["latencies"], 99))
        table.append(entry)
    by_name = {e["row"]: e for e in table}
    for entry in table:
        for base in ("pipeline PyTorch bs16", "pipeline TF bs1"):
            if base in by_name:
                entry[f"x {base}"] = entry["questions_per_s"] / by_name[base]["questions_per_s"]
        if "p50_ms" in entry and "pipeline PyTorch bs1" in by_name:
            entry["p50 / PyTorch bs1 p50"] = entry["p50_ms"] / by_name["pipeline PyTorch bs1"]["p50_ms"]
    return table


def versus_onnx_runtime(table: list[dict]) -> list[str]:
    """tf-qa's batch-16 and batch-1 rows against the best ONNX Runtime row of the same batch size."""
    lines = []
    for batch, key, better in (("bs16", "questions_per_s", max), ("bs1", "p50_ms", min)):
        onnx = [e for e in table if e["row"].startswith("ONNX Runtime") and e["row"].endswith(batch)]
        if not onnx:
            continue
        best = better(onnx, key=lambda e: e[key])
        for entry in table:
            if entry["row"].startswith("tf-qa") and entry["row"].endswith(batch) and key in entry:
                ratio = entry[key] / best[key]
                lines.append(f"{entry['row']}: {ratio:.2f}x the {key} of the best ONNX Runtime row ({best['row']})")
    return lines


def batch1_breakdown(checkpoint: str, checkpoint_pt: str, workdir: Path, exports, rows, cases) -> dict[str, dict]:
    """Per-stage median ms at batch 1 (breakdown.py) of each export and of ONNX Runtime int8, on ``cases``; what
    the end-to-end p50 of the same questions takes beyond the stages is the transport (tf-qa: gRPC and the
    server's threads; ONNX Runtime: the pipeline's own code)."""
    columns = {}
    for name, repo in profile_exports(checkpoint, workdir, report, exports).items():
        report(f"{LABELS[name]}: batch-1 breakdown ...")
        columns[f"{LABELS[name]}, gRPC"] = _with_total(
            run_worker("breakdown_tf", {"saved_model": f"{repo}/1", "cases": cases})["stages"],
            rows.get(f"{LABELS[name]} gRPC bs1"),
            "gRPC transport, server threads",
            len(cases),
        )
    onnx = workdir / "onnx" / "int8.onnx"
    if onnx.exists():
        report("ONNX Runtime int8: batch-1 breakdown ...")
        config = {"onnx": str(onnx), "checkpoint_pt": checkpoint_pt, "cases": cases}
        stages = run_worker("breakdown_onnx", config)["stages"]
        row = rows.get("ONNX Runtime int8 bs1")
        columns["ONNX Runtime int8, pipeline"] = _with_total(stages, row, "pipeline: other", len(cases))
    return columns


#: The ways to the fastest export that take turns with ONNX Runtime int8 at batch 1 (``batch1_in_turn``).
IN_TURN_WAYS = ("native runner", "C++ front end", "C++ client", "tf-qa serve", "ONNX Runtime")


def batch1_in_turn(repositories: dict, workdir: Path, checkpoint_pt: str, cases) -> dict | None:
    """The last export's batch-1 p50 in TensorFlow's C++ runtime and over gRPC, taking turns with ONNX Runtime
    int8 in the pipeline on ``cases``, and each one's ratio to ONNX Runtime's (None without ONNX Runtime)."""
    onnx = workdir / "onnx" / "int8.onnx"
    if not onnx.exists():
        return None
    name, repository = list(repositories.items())[-1]
    report(f"{LABELS[name]}: batch 1 in turn with ONNX Runtime int8 ...")
    config = {"saved_model": f"{repository}/1", "onnx": str(onnx), "checkpoint_pt": checkpoint_pt, "cases": cases}
    p50 = run_worker("in_turn", {**config, "ways": list(IN_TURN_WAYS)})["p50_ms"]
    ratios = {way: p50[way] / p50["ONNX Runtime"] for way in p50 if way != "ONNX Runtime"}
    return {"export": LABELS[name], "p50_ms": p50, "x_onnx_runtime_int8": ratios}


def _with_total(stages: dict, row: dict | None, rest: str, count: int) -> dict:
    """``stages`` with the end-to-end p50 of ``row`` over the first ``count`` questions, and the rest of it."""
    if row and row.get("latencies"):
        total = 1000 * percentile(row["latencies"][:count], 50)
        stages[rest] = total - sum(stages.values())
        stages["end to end, p50"] = total
    return stages


def load_table(repositories: dict[str, str], cases) -> list[dict]:
    """Latency under load, by export, server batching (off, and the platform config's) and concurrent clients."""
    table = []
    for name, repo in repositories.items():
        for batching, args in (("off", []), ("on", BATCHING_ARGS)):
            report(f"{LABELS[name]} export, server batching {batching}: 1, 4, 8 and 16 concurrent clients ...")
            for clients, row in run_load_rows(repo, cases, args).items():
                table.append(
                    {
                        "export": LABELS[name],
                        "batching": batching,
                        "clients": int(clients),
                        "questions_per_s": len(cases) / row["seconds"],
                        "p50_ms": 1000 * percentile(row["latencies"], 50),
                        "p99_ms": 1000 * percentile(row["latencies"], 99),
                    }
                )
    return table


def batching_sweep(repository: str, cases) -> list[dict]:
    n, sweep = len(cases), []
    for setting, batching_args in BATCHING_SWEEP.items():
        report(f"batching sweep: {setting} ...")
        result = run_server_rows(repository, cases, batching_args)
        sweep.append(
            {
                "setting": setting,
                "bs1_p50_ms": 1000 * percentile(result["bs1"]["latencies"], 50),
                "bs1_questions_per_s": n / result["bs1"]["seconds"],
                "bs16_questions_per_s": n / result["bs16"]["seconds"],
                "clients8_questions_per_s": n / result["concurrent8"]["seconds"],
            }
        )
    return sweep


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=positive_int, default=300)
    parser.add_argument(
        "--model", choices=MODELS, default="demo", help="the trained demo model (EM/F1), or a random base-sized one"
    )
    parser.add_argument("--output", default="benchmarks/results")
    parser.add_argument("--skip-pipelines", action="store_true", help="only the tf-qa rows")
    parser.add_argument("--verbose", action="store_true", help="also show the libraries' own messages")
    parser.add_argument(
        "--exports",
        nargs="+",
        choices=EXPORTS,
        default=list(EXPORTS),
        help="the exports to measure (default: all)",
    )
    parser.add_argument(
        "--breakdown-questions",
        type=non_negative_int,
        default=50,
        help="questions of the batch-1 per-stage breakdown (0: none; default %(default)s)",
    )
    parser.add_argument(
        "--load", action="store_true", help="also measure latency under load: 1, 4, 8 and 16 concurrent clients"
    )
    parser.add_argument(
        "--sweep-batching",
        action="store_true",
        help="also run the gRPC rows under each server batching setting in BATCHING_SWEEP",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.verbose:
        console.quiet()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    exports = exports_for_this_cpu(args.exports)
    checkpoint, checkpoint_pt, repositories = prepare(output / args.model, report, exports, args.model)
    cases, golds = load_questions(args.questions, held_out=args.model == "demo")
    golds = golds if args.model == "demo" else []  # a random model's EM/F1 say nothing
    window_lengths = window_lengths_of(checkpoint, cases)
    n, size = len(cases), model_size(checkpoint)
    useful_gflop = sum(distilbert_flops(length, **size) for lengths in window_lengths for length in lengths) / 1e9
    report(f"{n} questions, {sum(map(len, window_lengths))} windows, {useful_gflop:.0f} GFLOP of model work")
    peak = run_worker("peak_matmul", {})["peak_gflops"]
    report(f"peak fp32 matmul: {peak:.1f} GFLOP/s")
    rows = {} if args.skip_pipelines else pipeline_rows(checkpoint, checkpoint_pt, cases)
    if not args.skip_pipelines:
        rows.update(onnx_rows(checkpoint_pt, output / args.model, cases))
    # The default export, then the opt-in bf16 ones (tf-qa export --matmul-dtype bfloat16), reported apart.
    more_rows, grpc_by_export = tf_qa_rows({LABELS[d]: repo for d, repo in repositories.items()}, cases)
    rows.update(more_rows)
    grpc = next(iter(grpc_by_export.values()))
    summary = {
        "questions": n,
        "windows": sum(map(len, window_lengths)),
        "useful_gflop": useful_gflop,
        "peak_matmul_gflops": peak,
        "model": args.model,
        "rows": table_rows(rows, cases, golds, useful_gflop, peak),
        "first_request_s": grpc["first_request"],
        "warm_request_s": grpc["warm_request"],
        "first_over_warm": grpc["first_request"] / grpc["warm_request"],
        "server_peak_rss_mb": grpc["server_peak_rss_mb"],
        "server_load_seconds": grpc["server_load_seconds"],
        "cpu_count": os.cpu_count(),
        "cpu": cpu_name(),
        "allocators": allocators(),
    }
    if "ONNX Runtime int8 bs1" in rows:
        fp32_spans, int8_spans = rows["ONNX Runtime fp32 bs1"]["spans"], rows["ONNX Runtime int8 bs1"]["spans"]
        summary["onnx_int8_top1_agreement_with_fp32"] = sum(a == b for a, b in zip(fp32_spans, int8_spans)) / n
    if "fp32" in repositories:
        fp32_spans = rows["tf-qa in-process bs1"]["spans"]
        summary["top1_agreement_with_fp32"] = {
            LABELS[name]: sum(a == b for a, b in zip(fp32_spans, rows[f"{LABELS[name]} in-process bs1"]["spans"])) / n
            for name in repositories
            if name != "fp32"
        }
    summary["versus_onnx_runtime"] = versus_onnx_runtime(summary["rows"])
    if args.breakdown_questions:
        summary["batch1_breakdown"] = batch1_breakdown(
            checkpoint, checkpoint_pt, output / args.model, exports, rows, cases[: args.breakdown_questions]
        )
    if "ONNX Runtime int8 bs1" in rows:
        summary["batch1_in_turn"] = batch1_in_turn(repositories, output / args.model, checkpoint_pt, cases)
    if args.load:
        summary["under_load"] = load_table(repositories, cases)
    if args.sweep_batching:
        summary["batching_sweep"] = batching_sweep(next(iter(repositories.values())), cases)
    summary["bench_seconds"] = time.monotonic() - started
    (output / "bench.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(output / "latency_vs_length.png", window_lengths, rows)
    print()
    print(format_table(summary))
    return 0


def allocators() -> dict[str, str]:
    """What each kind of row allocates with: tf-qa's servers and native runner preload TCMalloc where it is
    installed (tf_qa.saved_model.allocator); in-process rows and the pipelines run on the bench's own."""
    preload = preload_environment(os.environ).get("LD_PRELOAD")
    servers = {None: "glibc malloc", "": "glibc malloc", TCMALLOC: "TCMalloc"}.get(preload, f"LD_PRELOAD={preload}")
    return {"tf-qa servers and native runner": servers, "in-process rows and pipelines": allocator_of()}


def format_table(summary: dict) -> str:
    lines = [
        f"| row | EM | F1 | q/s | p50 ms | p99 ms | GFLOP/s (% of peak {summary['peak_matmul_gflops']:.0f}) "
        "| x PyTorch bs16 | x TF bs1 | p50 / PyTorch bs1 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    fmt = lambda value, spec: "" if value is None else format(value, spec)  # noqa: E731
    for row in summary["rows"]:
        lines.append(
            f"| {row['row']} | {fmt(row.get('exact_match'), '.2f')} | {fmt(row.get('f1'), '.2f')} | "
            f"{row['questions_per_s']:.2f} | {fmt(row.get('p50_ms'), '.0f')} | "
            f"{fmt(row.get('p99_ms'), '.0f')} | {row['gflops']:.0f} ({100 * row['peak_fraction']:.0f}%) | "
            f"{fmt(row.get('x pipeline PyTorch bs16'), '.2f')} | {fmt(row.get('x pipeline TF bs1'), '.2f')} | "
            f"{fmt(row.get('p50 / PyTorch bs1 p50'), '.2f')} |"
        )
    lines.append("")
    model = {"demo": "the trained demo model, held-out SQuAD questions", "base": "a random base-sized model"}
    lines.append(
        f"{model[summary['model']]}: "
        f"{summary['questions']} questions ({summary['windows']} windows); first gRPC request after start "
        f"{1000 * summary['first_request_s']:.0f} ms vs warm {1000 * summary['warm_request_s']:.0f} ms "
        f"({summary['first_over_warm']:.2f}x); server peak RSS {summary['server_peak_rss_mb']:.0f} MB; "
        f"bench took {summary['bench_seconds'] / 60:.1f} min on {summary['cpu_count']} CPUs: {summary['cpu']}"
    )
    if "allocators" in summary:
        lines.append("allocators: " + "; ".join(f"{rows} on {name}" for rows, name in summary["allocators"].items()))
    for label, agreement in summary.get("top1_agreement_with_fp32", {}).items():
        lines.append(
            f"{label} export (opt-in): top answer (start, end) equal to the fp32 export's on "
            f"{100 * agreement:.1f}% of the {summary['questions']} questions"
        )
    lines += summary.get("versus_onnx_runtime", [])
    if "onnx_int8_top1_agreement_with_fp32" in summary:
        lines.append(
            f"ONNX Runtime int8: top answer (characters) equal to ONNX Runtime fp32's on "
            f"{100 * summary['onnx_int8_top1_agreement_with_fp32']:.1f}% of the {summary['questions']} questions"
        )
    in_turn = summary.get("batch1_in_turn")
    if in_turn:
        ratios = ", ".join(f"{way} {ratio:.2f}x" for way, ratio in in_turn["x_onnx_runtime_int8"].items())
        lines.append(
            f"{in_turn['export']} at batch 1, taking turns with ONNX Runtime int8 (its p50 "
            f"{in_turn['p50_ms']['ONNX Runtime']:.2f} ms): {ratios} its p50"
        )
    breakdown = summary.get("batch1_breakdown", {})
    stages = list(dict.fromkeys(stage for column in breakdown.values() for stage in column))
    lines += markdown_table(
        ["batch 1, median ms", *breakdown],
        [[stage, *(fmt(column.get(stage), ".2f") for column in breakdown.values())] for stage in stages],
    )
    load = summary.get("under_load", [])
    lines += markdown_table(
        ["export", "server batching", "clients", "q/s", "p50 ms", "p99 ms"],
        [
            [
                r["export"],
                r["batching"],
                r["clients"],
                f"{r['questions_per_s']:.2f}",
                f"{r['p50_ms']:.0f}",
                f"{r['p99_ms']:.0f}",
            ]
            for r in load
        ],
    )
    sweep = summary.get("batching_sweep", [])
    keys = ("bs1_questions_per_s", "bs16_questions_per_s", "clients8_questions_per_s")
    lines += markdown_table(
        ["server batching", "bs1 p50 ms", "bs1 q/s", "bs16 q/s", "8 clients q/s"],
        [[r["setting"], f"{r['bs1_p50_ms']:.1f}", *(f"{r[key]:.2f}" for key in keys)] for r in sweep],
    )
    return "\n".join(lines)


def markdown_table(header: list[str], body: list[list]) -> list[str]:
    """A Markdown table after a blank line (nothing when ``body`` is empty); numbers right-aligned."""
    if not body:
        return []
    align = ["---:" if isinstance(cell, (int, float)) or cell[:1].isdigit() else "---" for cell in body[0]]
    return ["", f"| {' | '.join(header)} |", f"| {' | '.join(align)} |"] + [
        f"| {' | '.join(str(cell) for cell in row)} |" for row in body
    ]


def plot(path: Path, window_lengths, rows) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    tokens = [sum(lengths) for lengths in window_lengths]
    figure, axes = plt.subplots(figsize=(8, 5))
    for name in (
        "pipeline PyTorch bs1",
        "pipeline TF bs1",
        "tf-qa gRPC bs1",
        "tf-qa in-process bs1",
        "tf-qa bf16 gRPC bs1",
        "tf-qa bf16 2-branch gRPC bs1",
    ):
        if name in rows and rows[name].get("latencies"):
            axes.scatter(tokens, [1000 * s for s in rows[name]["latencies"]], s=8, label=name, alpha=0.7)
    axes.set_xlabel("tokens in the question's windows")
    axes.set_ylabel("latency, ms (batch 1)")
    axes.set_title("Latency against context length: tf-qa vs the transformers pipeline")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
