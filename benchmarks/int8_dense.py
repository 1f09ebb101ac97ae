"""Would an int8 export pay? The trained demo model's 36 encoder dense layers in int8, judged by EM/F1 and speed.

The int8 dense layer uses only ops that stock TF Serving has (``QuantizeV2``, ``QuantizedMatMulWithBias`` or
``QuantizedMatMulWithBiasAndDequantize``, which oneDNN runs on VNNI and AMX-INT8): activations quantized to uint8,
weights int8 per output column. Everything else (embeddings, attention scores, softmax, layer norms, the QA head)
stays fp32. The activations' range is either measured per call over the whole tensor (``dynamic``: an answer
then depends on the other questions of its batch), calibrated once (``static``: each layer's input range over the
windows of ``--calibration`` questions of the demo model's training articles, fixed in the graph; ``static,
layer-norm inputs`` only for the query, key, value and lin1 layers), or each row's own (``per-token``: a row's
rounding depends on that row alone). ``int8 per-token in the 2-branch bf16 export`` puts the per-token product
in place of the 2-branch bf16 export's products instead (against ``bf16 2-branch``). It prints, one run,
in-process: EM/F1 on the held-out questions, q/s at batch 16 and p50 at batch 1, and whether each variant gives
the same answers alone as in batches of 16.

    python benchmarks/int8_dense.py --questions 533 --calibration 200
    TF_NUM_INTRAOP_THREADS=1 python benchmarks/int8_dense.py --questions 100 --variants "bf16 2-branch" \
        "int8 per-token in the 2-branch bf16 export"
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_setup import load_questions
from served import cpu_name

from tf_qa import console
from tf_qa.arguments import positive_int
from tf_qa.graph.int8 import int8_columns


def int8_dense(layers, ranges: dict | None = None, *, per_token: bool = False):
    """A ``_dense(layer, rows)`` replacement: int8 for ``layers``, fp32 MatMul + BiasAdd for the others.

    Weights: int8 with one scale per output column. Activations: shifted by ``low`` so they are non-negative,
    quantized to uint8 over [0, ``high - low``] (``SCALED``, values outside saturate); ``low`` and ``high`` are
    ``ranges[id(layer)]`` when given (static), else the call's own minimum and maximum (dynamic). The shift comes
    back through the float bias (``rows @ W = (rows - low) @ W + low * column_sums(W)``); the op scales a float
    bias into its int32 accumulator's units, so the bias is divided by the column scales like the weights. With
    ``per_token``, each row is quantized by its own range instead (``per_token_product``).
    """
    import tensorflow as tf

    packed = {}
    for layer in layers:
        kernel = layer.kernel.numpy()
        packed[id(layer)] = (*int8_columns(kernel), kernel.sum(axis=0))

    def dense(layer, rows):
        if id(layer) not in packed:
            return tf.nn.bias_add(tf.matmul(rows, layer.kernel), layer.bias)
        weights, scale, column_sums = packed[id(layer)]
        if per_token:
            return per_token_product(rows, weights, scale, layer.bias)
        if ranges is None:
            low = tf.reduce_min(rows)
            high = tf.maximum(tf.reduce_max(rows - low), 1e-6)
        else:
            low, high = ranges[id(layer)][0], max(ranges[id(layer)][1] - ranges[id(layer)][0], 1e-6)
        quantized = tf.quantization.quantize(rows - low, 0.0, high, tf.quint8, mode="SCALED")
        out = tf.raw_ops.QuantizedMatMulWithBias(
            a=quantized.output,
            # int8, not qint8, in the graph: a quantized-dtype constant cannot cross into the window-group loop.
            b=tf.bitcast(tf.constant(weights), tf.qint8),
            bias=(layer.bias + low * column_sums) / scale,
            min_a=quantized.output_min,
            max_a=quantized.output_max,
            min_b=-1.0,
            max_b=1.0,
            Toutput=tf.qint32,
            input_quant_mode="SCALED",
        )
        return tf.cast(tf.bitcast(out.out, tf.int32), tf.float32) * (scale * quantized.output_max / (255.0 * 127.0))

    return dense


def shifted_uint8_product(shifted_rows, high: float, weights: np.ndarray, shift: float):
    """``(shifted_rows - shift) @ (weights / 127)`` in float32, the rows (in [0, ``high``]) quantized to uint8 over
    that fixed range (``SCALED``), ``weights`` int8 [in, out]: the op's float bias takes back the shift."""
    import tensorflow as tf

    quantized = tf.quantization.quantize(shifted_rows, 0.0, high, tf.quint8, mode="SCALED")
    return tf.raw_ops.QuantizedMatMulWithBiasAndDequantize(
        a=quantized.output,
        b=tf.bitcast(tf.constant(weights), tf.qint8),
        bias=tf.constant(-shift * weights.astype(np.float32).sum(axis=0) / 127.0),
        min_a=quantized.output_min,
        max_a=quantized.output_max,
        min_b=-1.0,
        max_b=1.0,
        min_freezed_output=-1.0,
        max_freezed_output=1.0,
        Toutput=tf.float32,
        input_quant_mode="SCALED",
    )


def per_token_product(rows, weights, scale, bias):
    """``rows @ W + bias`` with each row quantized by its own largest magnitude (so a row's rounding depends on
    that row alone, never on its batch): divided by it, the rows lie in [-1, 1]; shifted by 1, in [0, 2]."""
    import tensorflow as tf

    largest = tf.maximum(tf.reduce_max(tf.abs(rows), axis=1, keepdims=True), 1e-12)
    out = shifted_uint8_product(rows / largest + 1.0, 2.0, weights, shift=1.0)
    return out * largest * scale + bias


def per_token_bf16_product(rows, weights: tuple[np.ndarray, np.ndarray]):
    """The bf16 export's ``_product_bf16`` (bf16 rows, a bf16 (kernel, bias) pair; bf16 out) as
    ``per_token_product``, its kernel int8 per output column."""
    import tensorflow as tf

    kernel, bias = weights
    int8_kernel, scale = int8_columns(kernel)
    product = per_token_product(tf.cast(rows, tf.float32), int8_kernel, scale, tf.constant(bias.astype(np.float32)))
    return tf.cast(product, tf.bfloat16)


def recorded_ranges(span_logits, tokenizer, questions, method: str, key_and_rows) -> dict:
    """The (min, max) of the rows each call of ``span_logits``' ``method`` takes, by the key that
    ``key_and_rows(*arguments) -> (key, rows)`` gives, over the windows of ``questions`` (the pipeline's 384 and
    128), run eagerly."""
    seen = {}
    plain = getattr(span_logits, method)

    def recording(*arguments):
        key, rows = key_and_rows(*arguments)
        low, high = float(np.min(rows)), float(np.max(rows))
        old = seen.get(key, (low, high))
        seen[key] = (min(old[0], low), max(old[1], high))
        return plain(*arguments)

    setattr(span_logits, method, recording)
    try:
        for question in questions:
            windows = tokenizer(
                question.question, question.context, truncation="only_second", max_length=384, stride=128,
                return_overflowing_tokens=True, return_tensors="np", padding=True,
            )  # fmt: skip
            span_logits(windows["input_ids"].astype(np.int32), windows["attention_mask"].astype(np.int32))
    finally:
        setattr(span_logits, method, plain)
    return seen


def calibrated_ranges(span_logits, tokenizer, questions) -> dict:
    """Each encoder dense layer's input (min, max) by ``id`` of the layer, over the windows of ``questions``, fp32."""
    return recorded_ranges(span_logits, tokenizer, questions, "_dense", lambda layer, rows: (id(layer), rows))


def rate_and_spans(signature, cases, batch: int) -> tuple[float, float, list]:
    """q/s, p50 seconds per call, and each question's top (start, end), asked ``batch`` questions a call."""
    import tensorflow as tf

    from tf_qa.signatures import answer_top_k_inputs

    def run_top_k_signature(signature, questions, contexts) -> dict:  # a traced, not a loaded, signature
        out = signature(**{k: tf.constant(v) for k, v in answer_top_k_inputs(questions, contexts).items()})
        return {k: v.numpy() for k, v in out.items()}

    questions, contexts = [q for q, _ in cases], [c for _, c in cases]
    run_top_k_signature(signature, questions[:16], contexts[:16])
    outputs, seconds = [], []
    for i in range(0, len(cases), batch):
        started = time.perf_counter()
        outputs.append(run_top_k_signature(signature, questions[i : i + batch], contexts[i : i + batch]))
        seconds.append(time.perf_counter() - started)
    spans = [(int(o["start"][row, 0]), int(o["end"][row, 0])) for o in outputs for row in range(len(o["start"]))]
    return len(cases) / sum(seconds), sorted(seconds)[len(seconds) // 2], spans


def f1_of(spans, cases, golds) -> dict:
    from tf_qa import squad

    predictions = {str(i): context[start:end] for i, ((_, context), (start, end)) in enumerate(zip(cases, spans))}
    return squad.evaluate([squad.SquadQuestion(str(i), "", "", tuple(g)) for i, g in enumerate(golds)], predictions)


VARIANTS = (
    "fp32", "bf16", "int8 dynamic", "int8 static", "int8 static, layer-norm inputs", "int8 per-token",
    "bf16 2-branch", "int8 per-token in the 2-branch bf16 export",
)  # fmt: skip


def encoder_dense_layers(span_logits) -> list:
    """The 36 dense layers of the transformer blocks (query, key, value, output; the FFN's two)."""
    return [
        layer
        for block in span_logits.qa_model.distilbert.transformer.layer
        for layer in (
            block.attention.q_lin, block.attention.k_lin, block.attention.v_lin, block.attention.out_lin,
            block.ffn.lin1, block.ffn.lin2,
        )
    ]  # fmt: skip


def build(checkpoint: str, variant: str, calibration):
    """The demo model's ``answer_top_k`` with its dense layers in ``variant``'s precision."""
    from transformers import AutoTokenizer, TFAutoModelForQuestionAnswering

    from tf_qa.graph.model import QuestionAnsweringModel
    from tf_qa.graph.options import ExportOptions

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    if variant in ("bf16 2-branch", "int8 per-token in the 2-branch bf16 export"):
        options = ExportOptions(matmul_dtype="bfloat16", parallel_branches=2)
    else:
        options = ExportOptions(matmul_dtype="bfloat16" if variant == "bf16" else "float32")
    model = QuestionAnsweringModel.from_transformers(
        TFAutoModelForQuestionAnswering.from_pretrained(checkpoint), tokenizer, options
    )
    logits = model.span_logits
    if variant == "int8 per-token in the 2-branch bf16 export":
        logits._product_bf16 = per_token_bf16_product
    elif variant.startswith("int8"):
        static = variant.startswith("int8 static")
        ranges = calibrated_ranges(logits, tokenizer, calibration) if static else None
        layers = encoder_dense_layers(logits)
        if variant == "int8 static, layer-norm inputs":  # query, key, value and lin1 only: the layer norms' outputs
            layers = [layer for index, layer in enumerate(layers) if index % 6 in (0, 1, 2, 4)]
        logits._dense = int8_dense(layers, ranges, per_token=variant == "int8 per-token")
    return model.signatures()["answer_top_k"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=positive_int, default=300, help="held-out questions asked")
    parser.add_argument("--calibration", type=positive_int, default=200, help="training questions calibrating")
    parser.add_argument(
        "--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS), help="which dense layers to measure"
    )
    parser.add_argument("--verbose", action="store_true", help="also show the libraries' own messages")
    args = parser.parse_args()
    if not args.verbose:
        console.quiet()
    import tempfile

    from tf_qa.checkpoints import HELD_OUT_TITLES, make_trained_demo_checkpoint
    from tf_qa.squad import SQUAD_V1_PART, load_squad

    checkpoint = make_trained_demo_checkpoint(tempfile.mkdtemp())
    cases, golds = load_questions(args.questions, held_out=True)
    calibration = [q for q in load_squad(SQUAD_V1_PART) if q.title not in HELD_OUT_TITLES][: args.calibration]
    print(f"{cpu_name()}; the trained demo model, {len(cases)} held-out questions, in-process")
    for variant in args.variants:
        signature = build(checkpoint, variant, calibration)
        (rate, _, batched), (_, p50, alone) = (rate_and_spans(signature, cases, batch) for batch in (16, 1))
        scores = f1_of(alone, cases, golds)
        same = sum(a == b for a, b in zip(alone, batched))
        print(
            f"{variant:13s} EM {scores['exact_match']:5.2f}  F1 {scores['f1']:5.2f}  batch 16 {rate:6.2f} q/s  "
            f"batch 1 p50 {1000 * p50:5.1f} ms  same answer alone and in batches of 16: {same}/{len(cases)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
