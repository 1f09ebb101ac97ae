"""Where a batch-1 question's time goes, stage by stage, for a tf-qa export and for ONNX Runtime in the pipeline.

tf-qa: the request built by the client, (de)serialized, decoded by the server as ``tf-qa serve`` does; the graph's
stages (the name scopes of ``QuestionAnsweringModel.answer`` and the DistilBERT layers) from a traced run of the
TF1 session, scaled to the untraced run's time; the response encoded and decoded; what a gRPC call takes beyond
all that is the transport and the server's threads (``bench.py`` subtracts). The graph is traced on a copy
exported with ``--window-group-size 0``: a traced session does not see inside the window-group loop's body, and
at batch 1 the loop costs nothing measurable.

ONNX Runtime: the pipeline's preprocessing (tokenization, windows), the ORT session (its profiler's node times,
grouped by layer part and scaled to the untraced run), the pipeline's postprocessing (spans, merging).

Run by ``bench.py`` through ``bench_workers.run_worker("breakdown_tf" | "breakdown_onnx", ...)``.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import defaultdict

#: The graph's stages, in order: the name scopes of the export's graph.
GRAPH_STAGES = ("inputs", "tokenization", "windows", "embeddings", "attention", "ffn", "qa_head", "spans", "merging")
#: The model's parts, as node names show them (TF name scopes; ONNX node names or fused op types); a layer's
#: first layer norm goes with its attention, the second with its FFN, as in the TF graph's scopes.
MODEL_PART = re.compile(
    r"(embeddings|embed|sa_layer_norm|attention|output_layer_norm|ffn|gelu|qa_head|qa_outputs)", re.IGNORECASE
)
MODEL_PART_NAMES = {
    "embed": "embeddings",
    "sa_layer_norm": "attention",
    "output_layer_norm": "ffn",
    "gelu": "ffn",
    "qa_outputs": "qa_head",
}
#: ONNX Runtime's fused residual + layer norm nodes, numbered in order: even ones end an attention block.
SKIP_LAYER_NORM = re.compile(r"SkipLayerNorm\w*_(\d+)")


def _ms(fn):
    started = time.perf_counter()
    result = fn()
    return 1000 * (time.perf_counter() - started), result


def graph_stage(node_name: str) -> str | None:
    """The stage of a traced node (None: variables, constants, the call around the graph)."""
    first = node_name.split("/")[0]
    if first == "model":
        part = MODEL_PART.search(node_name)
        return MODEL_PART_NAMES.get(part.group(1).lower(), part.group(1).lower()) if part else "model, other"
    return first if first in GRAPH_STAGES else None


def onnx_stage(node_name: str, op_type: str) -> str:
    """The model part of an ONNX Runtime node (its name, else its fused op's type)."""
    skip = SKIP_LAYER_NORM.fullmatch(node_name)
    if skip:
        return "ffn" if int(skip.group(1)) % 2 else "attention"
    part = MODEL_PART.search(node_name) or MODEL_PART.search(op_type)
    return MODEL_PART_NAMES.get(part.group(1).lower(), part.group(1).lower()) if part else "model, other"


def _scaled(op_micros: dict[str, float], wall_ms: float) -> dict[str, float]:
    """Each stage's share of the traced op time, as milliseconds of the untraced run, in ``GRAPH_STAGES`` order."""
    total = sum(op_micros.values()) or 1.0
    order = [*GRAPH_STAGES, "model, other"]
    return {stage: wall_ms * op_micros[stage] / total for stage in sorted(op_micros, key=order.index)}


def _medians(samples: list[dict[str, float]]) -> dict[str, float]:
    keys = list(dict.fromkeys(key for sample in samples for key in sample))
    return {key: statistics.median(sample.get(key, 0.0) for sample in samples) for key in keys}


def worker_breakdown_tf(config) -> dict:
    """Per-stage medians (ms) of ``answer_top_k`` at batch 1 on ``config["saved_model"]``."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from tf_qa import signatures as contract
    from tf_qa.saved_model.session import load_session
    from tf_qa.server.predictor import predict_response, tensor_from_proto
    from tf_qa.server.repository import LoadedVersion
    from tf_qa.tensors import make_ndarray

    session, signatures = load_session(config["saved_model"])
    version = LoadedVersion("bench", 1, session, signatures)  # as tf-qa serve holds it, for its response
    signature = signatures["answer_top_k"]
    outputs = sorted(signature.outputs)
    traced = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)

    def one(question: str, context: str) -> dict[str, float]:
        times = {}
        times["request: build (client)"], request = _ms(
            lambda: contract.predict_request(
                "answer_top_k", contract.answer_top_k_inputs([question], [context]), "bench"
            )
        )
        times["request: serialize, parse"], request = _ms(
            lambda: predict_pb2.PredictRequest.FromString(request.SerializeToString())
        )
        times["request: decode tensors (server)"], feeds = _ms(
            lambda: {signature.inputs[k].name: tensor_from_proto(k, v, 1 << 30) for k, v in request.inputs.items()}
        )
        fetches = [signature.outputs[o].name for o in outputs]
        wall, values = _ms(lambda: session.run(fetches, feeds))
        metadata = tf.compat.v1.RunMetadata()
        session.run(fetches, feeds, options=traced, run_metadata=metadata)
        op_micros = defaultdict(float)
        for device in metadata.step_stats.dev_stats:
            for node in device.node_stats:
                stage = graph_stage(node.node_name)
                if stage:
                    op_micros[stage] += node.op_end_rel_micros - node.op_start_rel_micros
        times.update({f"graph: {stage}": ms for stage, ms in _scaled(op_micros, wall).items()})

        times["response: encode tensors (server)"], response = _ms(
            lambda: predict_response(version, "answer_top_k", outputs, values)
        )
        times["response: serialize, parse"], response = _ms(
            lambda: predict_pb2.PredictResponse.FromString(response.SerializeToString())
        )
        times["response: decode (client)"], _ = _ms(
            lambda: contract.answers_from_arrays({k: make_ndarray(v) for k, v in response.outputs.items()}, [1])
        )
        return times

    for question, context in config["cases"][:3]:
        one(question, context)
    return {"stages": _medians([one(q, c) for q, c in config["cases"]])}


def worker_breakdown_onnx(config) -> dict:
    """Per-stage medians (ms) of the transformers pipeline around an ONNX Runtime session, at batch 1. The
    profiled session runs after the timed ones, so that its threads never compete with them."""
    import onnxruntime as ort
    import torch
    from transformers import pipeline

    def session(profiling: bool = False):
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_profiling = profiling
        return ort.InferenceSession(config["onnx"], options, providers=["CPUExecutionProvider"])

    pipe = pipeline("question-answering", model=config["checkpoint_pt"], tokenizer=config["checkpoint_pt"])
    timed, windows = session(), []

    def one(question: str, context: str) -> dict[str, float]:
        times = {}
        inputs = pipe._args_parser(question=question, context=context)[0]
        times["pipeline: preprocess (tokenization, windows)"], features = _ms(lambda: list(pipe.preprocess(inputs)))
        outputs, times["model: ORT session"] = [], 0.0
        for feature in features:
            feeds = {k: feature[k].numpy() for k in ("input_ids", "attention_mask")}
            ms, (start, end) = _ms(lambda feeds=feeds: timed.run(["start_logits", "end_logits"], feeds))
            times["model: ORT session"] += ms
            outputs.append({**feature, "start": torch.from_numpy(start), "end": torch.from_numpy(end)})
            windows.append(feeds)
        times["pipeline: postprocess (spans, merging)"], _ = _ms(lambda: pipe.postprocess(outputs))
        return times

    for question, context in config["cases"][:3]:
        one(question, context)
    stages = _medians([one(q, c) for q, c in config["cases"]])
    model, postprocess = stages.pop("model: ORT session"), stages.pop("pipeline: postprocess (spans, merging)")
    parts = _scaled(_onnx_node_micros(session(True), windows), model)
    stages.update({f"model: {part}": ms for part, ms in parts.items()})
    stages["pipeline: postprocess (spans, merging)"] = postprocess
    return {"stages": stages}


def _onnx_node_micros(profiled, windows: list[dict]) -> dict[str, float]:
    """Kernel microseconds by model part of ``profiled`` (a session with profiling on) over ``windows``."""
    import os

    for feeds in windows:
        profiled.run(["start_logits", "end_logits"], feeds)
    profile = profiled.end_profiling()
    op_micros = defaultdict(float)
    with open(profile) as file:
        for event in json.load(file):
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                node = event["name"][: -len("_kernel_time")]
                op_micros[onnx_stage(node, event.get("args", {}).get("op_name", ""))] += event["dur"]
    os.unlink(profile)
    return op_micros
