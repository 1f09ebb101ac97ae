"""Would an int8 export pay? The fp32 model with its 36 encoder dense layers in int8, measured in-process.

The int8 dense layer uses only ops that stock TF Serving has (``QuantizeV2``, ``QuantizedMatMulWithBias``, which
oneDNN runs on VNNI): activations quantized per call to uint8 after a shift by their minimum (the shift is
compensated in the float bias), weights quantized to int8 per tensor or per output column. Everything else
(embeddings, attention scores, softmax, layer norms, the QA head) stays fp32. It prints, one run, batch 16 on the
same SQuAD questions: the fp32 and int8 rates and how often the int8 top answer (start, end) equals fp32's. The
issue's bar for shipping it: at least 1.3x the rate and 98% agreement.

    python benchmarks/int8_dense.py --questions 300 [--per-column]

Activations are quantized over the whole call, so an int8 answer depends on the other questions of its batch; the
script asks at batch 16 and at batch 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_setup import load_questions, prepare
from served import cpu_name

from tf_qa.arguments import positive_int


def int8_dense(layers, per_column: bool):
    """A ``_dense(layer, rows)`` replacement: int8 for ``layers``, fp32 MatMul + BiasAdd for the others.

    Weights: int8 with one scale per output column (or one per tensor). Activations: shifted by their minimum so
    they are non-negative, quantized to uint8 over their range per call (``SCALED``); the shift comes back
    through the float bias (``rows @ W = (rows - low) @ W + low * column_sums(W)``). The op scales a float bias
    into its int32 accumulator's units, so the bias is divided by the column scales like the weights.
    """
    import tensorflow as tf

    packed = {}
    for layer in layers:
        kernel = layer.kernel
        scale = tf.maximum(tf.reduce_max(tf.abs(kernel), axis=0 if per_column else None), 1e-12)
        # int8, not qint8: a quantized-dtype constant cannot cross into the model's window-group while loop
        # once TF1 lowers it (no NextIteration kernel for qint8); bitcast where used.
        packed[id(layer)] = (tf.cast(tf.round(kernel / scale * 127.0), tf.int8), scale, tf.reduce_sum(kernel, 0))

    def dense(layer, rows):
        if id(layer) not in packed:
            return tf.nn.bias_add(tf.matmul(rows, layer.kernel), layer.bias)
        weights, scale, column_sums = packed[id(layer)]
        low = tf.reduce_min(rows)
        shifted = rows - low
        high = tf.maximum(tf.reduce_max(shifted), 1e-6)
        quantized = tf.quantization.quantize(shifted, 0.0, high, tf.quint8, mode="SCALED")
        out = tf.raw_ops.QuantizedMatMulWithBias(
            a=quantized.output,
            b=tf.bitcast(weights, tf.qint8),
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


def rate_and_spans(signature, cases, batch: int) -> tuple[float, float, list]:
    """q/s, p50 seconds per call, and each question's top (start, end), asked ``batch`` questions a call."""
    from tf_qa.graph.model import run_top_k_signature

    questions, contexts = [q for q, _ in cases], [c for _, c in cases]
    run_top_k_signature(signature, questions[:16], contexts[:16])
    outputs, seconds = [], []
    for i in range(0, len(cases), batch):
        started = time.perf_counter()
        outputs.append(run_top_k_signature(signature, questions[i : i + batch], contexts[i : i + batch]))
        seconds.append(time.perf_counter() - started)
    spans = [(int(o["start"][row, 0]), int(o["end"][row, 0])) for o in outputs for row in range(len(o["start"]))]
    return len(cases) / sum(seconds), sorted(seconds)[len(seconds) // 2], spans


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=positive_int, default=300)
    parser.add_argument("--per-column", action="store_true", help="int8 weight scales per output column")
    parser.add_argument("--output", default="benchmarks/results")
    args = parser.parse_args()
    from transformers import AutoTokenizer, TFAutoModelForQuestionAnswering

    from tf_qa.graph.model import QuestionAnsweringModel

    checkpoint, _, _ = prepare(Path(args.output), print, [])
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    cases, _ = load_questions(args.questions)
    results = {}
    for precision in ("fp32", "int8"):
        model = QuestionAnsweringModel.from_transformers(
            TFAutoModelForQuestionAnswering.from_pretrained(checkpoint), tokenizer
        )
        if precision == "int8":
            logits = model.span_logits
            logits._dense = int8_dense(logits._encoder_dense_layers(), args.per_column)
        signature = model.signatures()["answer_top_k"]
        results[precision] = {batch: rate_and_spans(signature, cases, batch) for batch in (16, 1)}
    weights = "per output column" if args.per_column else "per tensor"
    print(f"{cpu_name()}; base-sized seeded model, {len(cases)} SQuAD questions, in-process; int8 weights {weights}")
    for batch in (16, 1):
        fp32, int8 = results["fp32"][batch], results["int8"][batch]
        agreement = sum(a == b for a, b in zip(fp32[2], int8[2])) / len(cases)
        print(
            f"batch {batch:2d}: fp32 {fp32[0]:6.2f} q/s, p50 {1000 * fp32[1]:5.0f} ms; int8 {int8[0]:6.2f} q/s "
            f"({int8[0] / fp32[0]:.2f}x), p50 {1000 * int8[1]:5.0f} ms; int8 top answer equal to fp32's on "
            f"{100 * agreement:.1f}%"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
