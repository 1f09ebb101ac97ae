"""The benchmark's measurements, each run in a fresh process by ``run_worker`` (runtimes and thread pools never
share one): the transformers pipeline, the SavedModel in-process, tf-qa over gRPC, the peak fp32 matmul.

    python benchmarks/bench_workers.py --worker KIND CONFIG.json OUT.json
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from breakdown import worker_breakdown_onnx, worker_breakdown_tf

from tf_qa.signatures import TOP_K_SIGNATURE, answer_top_k_inputs

MODEL_NAME = "bench"


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
    pipe = pipeline(
        "question-answering", model=config["checkpoint"], tokenizer=config["checkpoint"], framework=framework, **options
    )
    return _pipeline_rows(pipe, config["cases"], config["batch_size"])


def worker_onnx_export(config) -> dict:
    """The PyTorch checkpoint as ONNX, as Optimum's CPU path makes it: exported, then the transformer fusions of
    ``onnxruntime.transformers`` (attention, layer norm, GELU), then int8 dynamic quantization of that model."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import DistilBertForQuestionAnswering

    model = DistilBertForQuestionAnswering.from_pretrained(config["checkpoint_pt"]).eval()
    raw, fp32, int8 = (str(Path(config["output"]) / name) for name in ("raw.onnx", "fp32.onnx", "int8.onnx"))
    axes = {0: "batch", 1: "sequence"}
    names = ["input_ids", "attention_mask", "start_logits", "end_logits"]
    example = torch.ones((2, 16), dtype=torch.long)
    torch.onnx.export(
        model, (example, example), raw, input_names=names[:2], output_names=names[2:],
        dynamic_axes=dict.fromkeys(names, axes), opset_version=17, dynamo=False,
    )  # fmt: skip
    hidden, heads = model.config.dim, model.config.n_heads
    optimize_model(raw, model_type="bert", num_heads=heads, hidden_size=hidden).save_model_to_file(fp32)
    # The fused model's custom ops (com.microsoft Attention, ...) escape ONNX shape inference: their outputs are fp32.
    quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, extra_options={"DefaultTensorType": 1})
    return {"fp32": fp32, "int8": int8}


def worker_onnx(config) -> dict:
    """ONNX Runtime end to end: the transformers pipeline's tokenization and span decoding around an ORT session
    (as Optimum's ORTModelForQuestionAnswering plugs into the pipeline)."""
    return _pipeline_rows(onnx_pipeline(config["onnx"], config["checkpoint_pt"]), config["cases"], config["batch_size"])


def onnx_pipeline(onnx: str, checkpoint_pt: str):
    """The transformers question-answering pipeline of ``checkpoint_pt`` with its model run by ONNX Runtime on
    ``onnx`` (the graph optimizations on, as Optimum's CPU path sets them)."""
    import onnxruntime as ort
    import torch
    from transformers import pipeline

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])

    class OrtModel:
        def forward(self, input_ids, attention_mask):
            feeds = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
            start, end = session.run(["start_logits", "end_logits"], feeds)
            return {"start_logits": torch.from_numpy(start), "end_logits": torch.from_numpy(end)}

        __call__ = forward

    pipe = pipeline("question-answering", model=checkpoint_pt, tokenizer=checkpoint_pt)
    pipe.model = OrtModel()
    return pipe


def _pipeline_rows(pipe, cases, batch_size: int) -> dict:
    for question, context in cases[:3]:
        pipe(question=question, context=context)
    if batch_size == 1:
        latencies, spans = [], []
        for question, context in cases:
            seconds, answer = _timed(lambda: pipe(question=question, context=context))
            latencies.append(seconds)
            spans.append([answer["start"], answer["end"]])
        return {"latencies": latencies, "seconds": sum(latencies), "spans": spans}
    seconds, _ = _timed(
        lambda: pipe(question=[q for q, _ in cases], context=[c for _, c in cases], batch_size=batch_size)
    )
    return {"seconds": seconds}


def worker_saved_model(config) -> dict:
    from tf_qa.saved_model.answerer import SavedModelAnswerer

    answerer = SavedModelAnswerer(config["saved_model"])
    answer = lambda q, c: answerer.answer_arrays(answer_top_k_inputs(q, c))  # noqa: E731
    return _answer_rows(answer, config["cases"], config["batch_size"])


def worker_runtime(config) -> dict:
    """The export's ``answer_top_k`` in TF Serving's runtimes: the TF1 session as ``tf-qa serve`` runs it
    (``session``), or TensorFlow's C++ runtime (``native``); both with the platform config's session options.
    A request's time includes building its tensors and reading the answers. ``default_session``: TensorFlow's
    default session options instead of the platform config's."""
    session_config = None
    if config.get("default_session"):
        from tensorflow.core.protobuf import config_pb2

        session_config = config_pb2.ConfigProto()
    if config["runtime"] == "native":
        from tf_qa.saved_model.answerer import NativeAnswerer

        native = NativeAnswerer(config["saved_model"], session_config)
        answer = lambda q, c: native.answer_arrays(answer_top_k_inputs(q, c))  # noqa: E731
    else:
        from tf_qa.saved_model.session import load_session, run_predict_request
        from tf_qa.saved_model.warmup import make_request

        session, signatures = load_session(config["saved_model"], session_config)
        answer = lambda q, c: run_predict_request(  # noqa: E731
            session, signatures, make_request(MODEL_NAME, TOP_K_SIGNATURE, answer_top_k_inputs(q, c))
        )
    return _answer_rows(answer, config["cases"], config["batch_size"])


def worker_native_grpc(config) -> dict:
    """The export over gRPC from the C++ front end (``tf_qa/server/native_grpc.py``), asked by QAClient; or why
    it cannot be built here (``unavailable``)."""
    from tf_qa.client import QAClient
    from tf_qa.saved_model.native import NativeUnavailable
    from tf_qa.server.native_grpc import NativeGrpcServer

    cases = config["cases"]
    try:
        server = NativeGrpcServer(config["saved_model"], MODEL_NAME)
    except NativeUnavailable as error:
        return {"unavailable": str(error)}
    with server, QAClient(server.target, MODEL_NAME, timeout=600) as client:
        for question, context in cases[:4]:
            client.answer(question, context)
        return _client_rows(client, cases)


def _answer_rows(answer, cases, batch_size: int) -> dict:
    """Times ``answer(questions, contexts)`` (``answer_top_k``'s outputs) over ``cases``, ``batch_size`` a call;
    at batch 1 also each latency and top (start, end)."""
    questions, contexts = [q for q, _ in cases], [c for _, c in cases]
    answer(questions[:16], contexts[:16])
    if batch_size == 1:
        latencies, spans = [], []
        for question, context in cases:
            seconds, out = _timed(lambda: answer([question], [context]))
            latencies.append(seconds)
            spans.append([int(out["start"][0, 0]), int(out["end"][0, 0])])
        return {"latencies": latencies, "seconds": sum(latencies), "spans": spans}
    size = batch_size
    seconds, _ = _timed(
        lambda: [answer(questions[i : i + size], contexts[i : i + size]) for i in range(0, len(cases), size)]
    )
    return {"seconds": seconds}


def _client_rows(client, cases) -> dict:
    """A QAClient's batch-1 row (each latency and top answer) and batch-16 row over ``cases``."""
    latencies, spans = [], []
    for question, context in cases:
        seconds, answer = _timed(lambda: client.answer(question, context))
        latencies.append(seconds)
        spans.append([answer["start"], answer["end"]] if answer else [-1, -1])
    questions, contexts = [q for q, _ in cases], [c for _, c in cases]
    seconds, _ = _timed(
        lambda: [client.answer_batch(questions[i : i + 16], contexts[i : i + 16]) for i in range(0, len(cases), 16)]
    )
    return {"bs1": {"latencies": latencies, "seconds": sum(latencies), "spans": spans}, "bs16": {"seconds": seconds}}


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
        result.update(_client_rows(client, cases))

    def one_client(chunk):
        with QAClient(target, MODEL_NAME, timeout=600) as own:
            for question, context in chunk:
                own.answer(question, context)

    chunks = [cases[i::8] for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        seconds, _ = _timed(lambda: list(pool.map(one_client, chunks)))
    result["concurrent8"] = {"seconds": seconds}
    return result


def worker_grpc_load(config) -> dict:
    """Latency under load: ``clients`` concurrent clients, each with its own channel, each sending one question
    per request, over the questions split between them; every request's latency, and the wall time."""
    from tf_qa.client import QAClient

    target, cases = config["target"], config["cases"]
    with QAClient(target, MODEL_NAME, timeout=600) as warm:
        for question, context in cases[:4]:
            warm.answer(question, context)
    result = {}
    for clients in config["clients"]:

        def one_client(chunk):
            with QAClient(target, MODEL_NAME, timeout=600) as own:
                return [_timed(lambda: own.answer(question, context))[0] for question, context in chunk]

        with ThreadPoolExecutor(clients) as pool:
            seconds, latencies = _timed(lambda: list(pool.map(one_client, [cases[i::clients] for i in range(clients)])))
        result[str(clients)] = {"seconds": seconds, "latencies": [s for chunk in latencies for s in chunk]}
    return result


def worker_in_turn(config) -> dict:
    """Batch-1 p50 ms of ``config["ways"]`` to one export and of ONNX Runtime's pipeline, taking turns 25 questions
    at a time (``grpc_overhead.p50_in_turn``): a ratio free of the machine's drift between the bench's rows."""
    from grpc_overhead import p50_in_turn

    onnx = (config["onnx"], config["checkpoint_pt"])
    cases = [tuple(case) for case in config["cases"]]
    return {"p50_ms": p50_in_turn(config["saved_model"], cases, onnx, ways=config["ways"], rounds=1)}


WORKERS = {
    "peak_matmul": worker_peak_matmul,
    "pipeline": worker_pipeline,
    "saved_model": worker_saved_model,
    "onnx_export": worker_onnx_export,
    "onnx": worker_onnx,
    "runtime": worker_runtime,
    "grpc": worker_grpc,
    "grpc_load": worker_grpc_load,
    "native_grpc": worker_native_grpc,
    "breakdown_tf": worker_breakdown_tf,
    "breakdown_onnx": worker_breakdown_onnx,
    "in_turn": worker_in_turn,
}


def run_worker(kind: str, config: dict, env: dict | None = None) -> dict:
    """Runs a worker in a fresh process (so runtimes and thread pools never share one)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(config, handle)
    out = handle.name + ".out"
    try:
        subprocess.run(
            [sys.executable, __file__, "--worker", kind, handle.name, out],
            check=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return json.loads(Path(out).read_text())
    finally:
        for path in (handle.name, out):
            if os.path.exists(path):
                os.unlink(path)


if __name__ == "__main__":
    _, _, kind, config_path, out_path = sys.argv
    Path(out_path).write_text(json.dumps(WORKERS[kind](json.loads(Path(config_path).read_text()))))
