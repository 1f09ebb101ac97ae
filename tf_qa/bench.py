"""Benchmark: tf-qa (in-process and over gRPC) against the transformers pipeline, same questions, same weights.

One run measures, on the first N SQuAD v1.1 dev questions (synthetic questions where the data is absent) and a
DistilBERT-base-sized checkpoint made with a fixed seed:

* the transformers pipeline: PyTorch at batch 1 and 16, TensorFlow at batch 1 (it ignores batch_size);
* the tf-qa SavedModel called in-process, batch 1 and 16;
* the same rows for the opt-in bf16 export (``--matmul-dtype bfloat16``), and how often its top answer equals
  the fp32 export's;
* tf-qa over gRPC through ``tf-qa serve`` (batching as in serving/batching_parameters.txt): batch 1 (p50,
  p99), 16 per request, and 8 concurrent clients sending one question each; the first request after start
  against a warm one; the server's peak RSS;
* the machine's peak fp32 matmul GFLOP/s (TensorFlow), against which the model's achieved GFLOP/s is set.

With ``--sweep-batching`` the gRPC rows are also run under each server batching setting of ``BATCHING_SWEEP``
(about 7 more minutes). Each row runs in its own process. It prints a table with ratios to the pipeline rows,
and writes ``bench.json`` and ``latency_vs_length.png`` to the output folder. The machine is noisy: ratios
from one run are what count.

    python benchmarks/bench.py --questions 300          # or: tf-qa bench --questions 300
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tf_qa.arguments import positive_int
from tf_qa.defaults import DEFAULT_DOC_STRIDE, DEFAULT_MAX_SEQ_LEN, TOP_K_SIGNATURE

SQUAD_V1 = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad" / "squad-v1.1-dev-part1.json"
MODEL_NAME = "bench"


def batching_args(timeout_micros: int, threads: int) -> list[str]:
    """``tf-qa serve`` options for server-side batching of up to 16 questions."""
    return ["--enable-batching", "--max-batch-size", "16", "--batch-timeout-micros", str(timeout_micros),
            "--num-batch-threads", str(threads)]


#: The server's batching settings, as in serving/batching_parameters.txt.
BATCHING_ARGS = batching_args(0, 2)

#: Settings compared by ``--sweep-batching`` (the measurements serving/batching_parameters.txt was tuned from).
BATCHING_SWEEP = {
    "no batching": [],
    "timeout 2 ms, 1 thread": batching_args(2000, 1),
    "timeout 2 ms, 2 threads": batching_args(2000, 2),
    "timeout 0, 1 thread": batching_args(0, 1),
    "timeout 0, 2 threads": BATCHING_ARGS,
}


# ---------------------------------------------------------------------------------------------- inputs
def load_questions(count: int) -> list[tuple[str, str]]:
    path = Path(os.environ.get("TF_QA_SQUAD_V1", SQUAD_V1))
    if path.exists():
        from tf_qa.squad import load_squad

        return [(q.question, q.context) for q in load_squad(path)[:count]]
    import random

    rng = random.Random(0)
    words = "the city river museum was built in by people capital north south century king bridge".split()
    cases = []
    for _ in range(count):
        context = " ".join(rng.choice(words) for _ in range(rng.randint(80, 220))) + "."
        cases.append((" ".join(rng.choices(words, k=6)) + "?", context))
    return cases


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def distilbert_flops(length: int, dim: int = 768, hidden: int = 3072, layers: int = 6) -> float:
    """Multiply-add FLOPs (x2) of one DistilBERT forward pass over ``length`` tokens."""
    per_layer = 2 * length * dim * dim * 4 + 2 * length * dim * hidden * 2 + 2 * 2 * length * length * dim
    return layers * per_layer + 2 * length * dim * 2


# ---------------------------------------------------------------------------------------------- workers
def _timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def worker_peak_matmul(_config) -> dict:
    import tensorflow as tf

    # The model's own matmul shapes; the best of several repetitions, since the machine is noisy.
    best = 0.0
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    for m, k, n in ((4096, 768, 3072), (4096, 3072, 768), (4096, 768, 768)):
        a = tf.random.normal([m, k])
        b = tf.random.normal([k, n])
        matmul(a, b).numpy()
        for _ in range(5):
            seconds, _ = _timed(lambda: [matmul(a, b).numpy() for _ in range(5)])
            best = max(best, 2 * m * k * n * 5 / seconds / 1e9)
    return {"peak_gflops": best}


def worker_pipeline(config) -> dict:
    from transformers import pipeline

    framework = config["framework"]
    options = {"dtype": None} if framework == "tf" else {}
    pipe = pipeline("question-answering", model=config["checkpoint"], tokenizer=config["checkpoint"],
                    framework=framework, **options)
    cases = config["cases"]
    for question, context in cases[:3]:
        pipe(question=question, context=context)
    if config["batch_size"] == 1:
        latencies = []
        for question, context in cases:
            seconds, _ = _timed(lambda: pipe(question=question, context=context))
            latencies.append(seconds)
        return {"latencies": latencies, "seconds": sum(latencies)}
    seconds, _ = _timed(lambda: pipe(question=[q for q, _ in cases], context=[c for _, c in cases],
                                     batch_size=config["batch_size"]))
    return {"seconds": seconds}


def worker_saved_model(config) -> dict:
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    from tf_qa.graph.model import run_top_k_signature as answer

    signature = tf.saved_model.load(config["saved_model"]).signatures[TOP_K_SIGNATURE]
    cases = config["cases"]
    questions, contexts = [q for q, _ in cases], [c for _, c in cases]
    answer(signature, questions[:16], contexts[:16])
    if config["batch_size"] == 1:
        latencies, spans = [], []
        for question, context in cases:
            seconds, out = _timed(lambda: answer(signature, [question], [context]))
            latencies.append(seconds)
            spans.append([int(out["start"][0, 0]), int(out["end"][0, 0])])
        return {"latencies": latencies, "seconds": sum(latencies), "spans": spans}
    size = config["batch_size"]
    seconds, _ = _timed(lambda: [answer(signature, questions[i:i + size], contexts[i:i + size])
                                 for i in range(0, len(cases), size)])
    return {"seconds": seconds}


def worker_grpc(config) -> dict:
    from tf_qa.client import QAClient

    target, cases = config["target"], config["cases"]
    with QAClient(target, MODEL_NAME, timeout=600) as client:
        first, _ = _timed(lambda: client.answer(*cases[0]))
        result = {"first_request": first}
        for question, context in cases[1:4]:
            client.answer(question, context)
        warm = [_timed(lambda: client.answer(*cases[0]))[0] for _ in range(5)]
        result["warm_request"] = statistics.median(warm)
        latencies = []
        for question, context in cases:
            seconds, _ = _timed(lambda: client.answer(question, context))
            latencies.append(seconds)
        result["bs1"] = {"latencies": latencies, "seconds": sum(latencies)}
        questions, contexts = [q for q, _ in cases], [c for _, c in cases]
        seconds, _ = _timed(lambda: [client.answer_batch(questions[i:i + 16], contexts[i:i + 16])
                                     for i in range(0, len(cases), 16)])
        result["bs16"] = {"seconds": seconds}

    def one_client(chunk):
        with QAClient(target, MODEL_NAME, timeout=600) as own:
            for question, context in chunk:
                own.answer(question, context)

    chunks = [cases[i::8] for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        seconds, _ = _timed(lambda: list(pool.map(one_client, chunks)))
    result["concurrent8"] = {"seconds": seconds}
    return result


WORKERS = {"peak_matmul": worker_peak_matmul, "pipeline": worker_pipeline, "saved_model": worker_saved_model,
           "grpc": worker_grpc}


def run_worker(kind: str, config: dict, env: dict | None = None) -> dict:
    """Runs a worker in a fresh process (so runtimes and thread pools never share one)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(config, handle)
    out = handle.name + ".out"
    try:
        subprocess.run([sys.executable, "-m", "tf_qa.bench", "--worker", kind, handle.name, out], check=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return json.loads(Path(out).read_text())
    finally:
        for path in (handle.name, out):
            if os.path.exists(path):
                os.unlink(path)


# ---------------------------------------------------------------------------------------------- setup
def prepare(workdir: Path, report) -> tuple[str, str, str, str]:
    """The base-size checkpoint (TF and PyTorch weights), its export and its opt-in bf16 export; reused when
    present."""
    from tf_qa.checkpoints import BASE, make_random_checkpoint

    checkpoint = workdir / "checkpoint"
    if not (checkpoint / "config.json").exists():
        report("making a DistilBERT-base-sized checkpoint (seed 0)")
        make_random_checkpoint(checkpoint, seed=0, size=BASE)
    checkpoint_pt = workdir / "checkpoint-pt"
    if not (checkpoint_pt / "config.json").exists():
        report("converting it to PyTorch weights for the PyTorch pipeline")
        # from_pretrained(from_tf=True) leaves every weight on the meta device in transformers 4.57.6, so
        # the TF weights are copied into a normally built PyTorch model instead.
        code = ("import sys; from transformers import AutoConfig, AutoTokenizer, DistilBertForQuestionAnswering,"
                " TFDistilBertForQuestionAnswering;"
                "from transformers.modeling_tf_pytorch_utils import load_tf2_model_in_pytorch_model as load;"
                "m = load(DistilBertForQuestionAnswering(AutoConfig.from_pretrained(sys.argv[1])),"
                " TFDistilBertForQuestionAnswering.from_pretrained(sys.argv[1]));"
                "m.save_pretrained(sys.argv[2]);"
                " AutoTokenizer.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2])")
        subprocess.run([sys.executable, "-c", code, str(checkpoint), str(checkpoint_pt)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    repositories = []
    for folder, matmul_dtype in (("repository", "float32"), ("repository-bf16", "bfloat16")):
        repository = workdir / folder / MODEL_NAME
        if not (repository / "1" / "saved_model.pb").exists():
            from tf_qa.saved_model.export import export_model

            shutil.rmtree(repository, ignore_errors=True)
            report(f"exporting it with tf-qa export --matmul-dtype {matmul_dtype}")
            export_model(str(checkpoint), repository, version=1, matmul_dtype=matmul_dtype, report=report)
        repositories.append(str(repository))
    return str(checkpoint), str(checkpoint_pt), *repositories


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_server_rows(repository: str, cases, batching_args: list[str]) -> dict:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tf_qa.cli", "serve", "--model-base-path", repository, "--model-name", MODEL_NAME,
         "--port", str(port), "--poll-seconds", "0", *batching_args],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        started = time.monotonic()
        for line in server.stdout:
            if line.startswith("serving "):
                break
        load_seconds = time.monotonic() - started
        result = run_worker("grpc", {"target": f"127.0.0.1:{port}", "cases": cases})
        with open(f"/proc/{server.pid}/status") as status:
            rss = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
        result["server_peak_rss_mb"] = rss / 1024
        result["server_load_seconds"] = load_seconds
        return result
    finally:
        server.terminate()
        server.wait(30)


# ---------------------------------------------------------------------------------------------- report
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tf-qa bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=positive_int, default=300)
    parser.add_argument("--output", default="benchmarks/results")
    parser.add_argument("--skip-pipelines", action="store_true", help="only the tf-qa rows")
    parser.add_argument("--sweep-batching", action="store_true",
                        help="also run the gRPC rows under each server batching setting in BATCHING_SWEEP")
    args = parser.parse_args(argv)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    report = lambda line: print(line, flush=True)  # noqa: E731
    bench_started = time.monotonic()

    checkpoint, checkpoint_pt, repository, repository_bf16 = prepare(output, report)
    cases = load_questions(args.questions)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    window_lengths = []
    for question, context in cases:
        encoded = tokenizer(question, context, truncation="only_second", max_length=DEFAULT_MAX_SEQ_LEN,
                            stride=DEFAULT_DOC_STRIDE,
                            return_overflowing_tokens=True)
        window_lengths.append([len(ids) for ids in encoded["input_ids"]])
    useful_gflop = sum(distilbert_flops(n) for lengths in window_lengths for n in lengths) / 1e9
    n = len(cases)
    report(f"{n} questions, {sum(map(len, window_lengths))} windows, {useful_gflop:.0f} GFLOP of model work")

    rows: dict[str, dict] = {}
    peak = run_worker("peak_matmul", {})["peak_gflops"]
    report(f"peak fp32 matmul: {peak:.1f} GFLOP/s")
    if not args.skip_pipelines:
        try:
            import torch  # noqa: F401

            for batch in (1, 16):
                report(f"pipeline PyTorch bs{batch} ...")
                rows[f"pipeline PyTorch bs{batch}"] = run_worker(
                    "pipeline", {"framework": "pt", "checkpoint": checkpoint_pt, "cases": cases, "batch_size": batch})
        except ImportError:
            report("PyTorch is not installed (pip install 'tf-qa[bench]'): PyTorch pipeline rows skipped")
        report("pipeline TF bs1 ...")
        rows["pipeline TF bs1"] = run_worker(
            "pipeline", {"framework": "tf", "checkpoint": checkpoint, "cases": cases, "batch_size": 1})
    # The default export, then the opt-in bf16 one (tf-qa export --matmul-dtype bfloat16), reported apart.
    grpc_by_export = {}
    for label, repo in (("tf-qa", repository), ("tf-qa bf16", repository_bf16)):
        for batch in (1, 16):
            report(f"{label} SavedModel in-process bs{batch} ...")
            rows[f"{label} in-process bs{batch}"] = run_worker(
                "saved_model", {"saved_model": f"{repo}/1", "cases": cases, "batch_size": batch})
        report(f"{label} over gRPC (tf-qa serve " + " ".join(BATCHING_ARGS) + ") ...")
        grpc_by_export[label] = run_server_rows(repo, cases, BATCHING_ARGS)
        rows[f"{label} gRPC bs1"] = grpc_by_export[label]["bs1"]
        rows[f"{label} gRPC bs16"] = grpc_by_export[label]["bs16"]
        rows[f"{label} gRPC 8 clients"] = grpc_by_export[label]["concurrent8"]
    grpc = grpc_by_export["tf-qa"]
    fp32_spans, bf16_spans = rows["tf-qa in-process bs1"]["spans"], rows["tf-qa bf16 in-process bs1"]["spans"]
    bf16_agreement = sum(a == b for a, b in zip(fp32_spans, bf16_spans)) / n

    table = []
    for name, row in rows.items():
        latencies = row.get("latencies")
        entry = {"row": name, "questions_per_s": n / row["seconds"],
                 "gflops": useful_gflop / row["seconds"], "peak_fraction": useful_gflop / row["seconds"] / peak}
        if latencies:
            entry.update(p50_ms=1000 * percentile(latencies, 50), p99_ms=1000 * percentile(latencies, 99))
        table.append(entry)
    by_name = {e["row"]: e for e in table}
    for entry in table:
        for base in ("pipeline PyTorch bs16", "pipeline TF bs1"):
            if base in by_name:
                entry[f"x {base}"] = entry["questions_per_s"] / by_name[base]["questions_per_s"]
        if "p50_ms" in entry and "pipeline PyTorch bs1" in by_name:
            entry["p50 / PyTorch bs1 p50"] = entry["p50_ms"] / by_name["pipeline PyTorch bs1"]["p50_ms"]

    summary = {
        "questions": n, "windows": sum(map(len, window_lengths)), "useful_gflop": useful_gflop,
        "peak_matmul_gflops": peak, "rows": table, "first_request_s": grpc["first_request"],
        "warm_request_s": grpc["warm_request"], "first_over_warm": grpc["first_request"] / grpc["warm_request"],
        "server_peak_rss_mb": grpc["server_peak_rss_mb"], "server_load_seconds": grpc["server_load_seconds"],
        "cpu_count": os.cpu_count(), "bf16_top1_agreement_with_fp32": bf16_agreement,
    }
    if args.sweep_batching:
        summary["batching_sweep"] = []
        for setting, batching_args in BATCHING_SWEEP.items():
            report(f"batching sweep: {setting} ...")
            result = run_server_rows(repository, cases, batching_args)
            summary["batching_sweep"].append({
                "setting": setting, "bs1_p50_ms": 1000 * percentile(result["bs1"]["latencies"], 50),
                "bs1_questions_per_s": n / result["bs1"]["seconds"],
                "bs16_questions_per_s": n / result["bs16"]["seconds"],
                "clients8_questions_per_s": n / result["concurrent8"]["seconds"]})
    summary["bench_seconds"] = time.monotonic() - bench_started
    (output / "bench.json").write_text(json.dumps(summary, indent=2) + "\n")
    _plot(output / "latency_vs_length.png", window_lengths, rows)
    print()
    print(format_table(summary))
    return 0


def format_table(summary: dict) -> str:
    lines = [f"| row | q/s | p50 ms | p99 ms | GFLOP/s (% of peak {summary['peak_matmul_gflops']:.0f}) "
             "| x PyTorch bs16 | x TF bs1 | p50 / PyTorch bs1 |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    fmt = lambda value, spec: "" if value is None else format(value, spec)  # noqa: E731
    for row in summary["rows"]:
        lines.append(
            f"| {row['row']} | {row['questions_per_s']:.2f} | {fmt(row.get('p50_ms'), '.0f')} | "
            f"{fmt(row.get('p99_ms'), '.0f')} | {row['gflops']:.0f} ({100 * row['peak_fraction']:.0f}%) | "
            f"{fmt(row.get('x pipeline PyTorch bs16'), '.2f')} | {fmt(row.get('x pipeline TF bs1'), '.2f')} | "
            f"{fmt(row.get('p50 / PyTorch bs1 p50'), '.2f')} |")
    lines.append("")
    lines.append(f"{summary['questions']} questions ({summary['windows']} windows); first gRPC request after start "
                 f"{1000 * summary['first_request_s']:.0f} ms vs warm {1000 * summary['warm_request_s']:.0f} ms "
                 f"({summary['first_over_warm']:.2f}x); server peak RSS {summary['server_peak_rss_mb']:.0f} MB; "
                 f"bench took {summary['bench_seconds'] / 60:.1f} min on {summary['cpu_count']} CPUs")
    lines.append(f"bf16 export (opt-in): top answer (start, end) equal to the fp32 export's on "
                 f"{100 * summary['bf16_top1_agreement_with_fp32']:.1f}% of the {summary['questions']} questions")
    if summary.get("batching_sweep"):
        lines += ["", "| server batching | bs1 p50 ms | bs1 q/s | bs16 q/s | 8 clients q/s |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for row in summary["batching_sweep"]:
            lines.append(f"| {row['setting']} | {row['bs1_p50_ms']:.1f} | {row['bs1_questions_per_s']:.2f} | "
                         f"{row['bs16_questions_per_s']:.2f} | {row['clients8_questions_per_s']:.2f} |")
    return "\n".join(lines)


def _plot(path: Path, window_lengths, rows) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    tokens = [sum(lengths) for lengths in window_lengths]
    figure, axes = plt.subplots(figsize=(8, 5))
    for name in ("pipeline PyTorch bs1", "pipeline TF bs1", "tf-qa gRPC bs1", "tf-qa in-process bs1",
                 "tf-qa bf16 gRPC bs1"):
        if name in rows and rows[name].get("latencies"):
            axes.scatter(tokens, [1000 * s for s in rows[name]["latencies"]], s=8, label=name, alpha=0.7)
    axes.set_xlabel("tokens in the question's windows")
    axes.set_ylabel("latency, ms (batch 1)")
    axes.set_title("Latency against context length: tf-qa vs the transformers pipeline")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        _, _, kind, config_path, out_path = sys.argv
        result = WORKERS[kind](json.loads(Path(config_path).read_text()))
        Path(out_path).write_text(json.dumps(result))
    else:
        sys.exit(main())
