"""Would an int8 export pay? The fp32 model with its 36 encoder dense layers in int8, measured in-process.

The int8 dense layer uses only ops that stock TF Serving has (``QuantizeV2``, ``QuantizedMatMulWithBias``, which
oneDNN runs on VNNI): activations quantized per call to uint8 after a shift by their minimum (the shift is
compensated in the float bias), weights quantized to int8 per tensor or per output column. Everything else
(embeddings, attention scores, softmax, layer norms, the QA head) stays fp32. It prints, one run, batch 16 on the
same SQuAD questions: the fp32 and int8 rates and how often the int8 top answer (start, end) equals fp32's. The
issue's bar for shipping it: at least 1.3x the rate and 98% agreement.

    python benchmarks/int8_dense.py --questions 300 [--per-column]
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
    """A ``_dense(layer, rows)`` replacement: int8 for ``layers``, fp32 MatMul + BiasAdd for the others."""
    import tensorflow as tf

    packed = {}
    for layer in layers:
        kernel = layer.kernel
        axis = 0 if per_column else None
        scale = tf.maximum(tf.reduce_max(tf.abs(kernel), axis=axis), 1e-12)
        # Weights as int8 (a qint8 constant cannot cross into the model's while loop); bitcast where used.
        packed[id(layer)] = (tf.cast(tf.round(kernel / scale * 127.0), tf.int8), scale, tf.reduce_sum(kernel, 0))

    def dense(layer, rows):
        if id(layer) not in packed:
            return tf.nn.bias_add(tf.matmul(rows, layer.kernel), layer.bias)
        weights, scale, column_sums = packed[id(layer)]
        low = tf.reduce_min(rows)
        shifted = rows - low  # >= 0: uint8 with SCALED quantization; rows @ W = shifted @ W + low * column sums
        quantized = tf.quantization.quantize(shifted, 0.0, tf.reduce_max(shifted), tf.quint8, mode="SCALED")
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


def rate_and_spans(signature, cases) -> tuple[float, list]:
    from tf_qa.graph.model import run_top_k_signature

    questions, contexts = [q for q, _ in cases], [c for _, c in cases]
    run_top_k_signature(signature, questions[:16], contexts[:16])
    started = time.perf_counter()
    outputs = [
        run_top_k_signature(signature, questions[i : i + 16], contexts[i : i + 16]) for i in range(0, len(cases), 16)
    ]
    seconds = time.perf_counter() - started
    spans = [(int(o["start"][row, 0]), int(o["end"][row, 0])) for o in outputs for row in range(len(o["start"]))]
    return len(cases) / seconds, spans


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
    cases = load_questions(args.questions)
    results = {}
    for precision in ("fp32", "int8"):
        model = QuestionAnsweringModel.from_transformers(
            TFAutoModelForQuestionAnswering.from_pretrained(checkpoint), tokenizer
        )
        if precision == "int8":
            logits = model.span_logits
            logits._dense = int8_dense(logits._encoder_dense_layers(), args.per_column)
        results[precision] = rate_and_spans(model.signatures()["answer_top_k"], cases)
    agreement = sum(a == b for a, b in zip(results["fp32"][1], results["int8"][1])) / len(cases)
    weights = "per output column" if args.per_column else "per tensor"
    print(f"{cpu_name()}; base-sized seeded model, {len(cases)} SQuAD questions, batch 16, in-process")
    print(f"fp32:                          {results['fp32'][0]:6.2f} q/s")
    print(
        f"int8 dense layers ({weights}): {results['int8'][0]:6.2f} q/s ({results['int8'][0] / results['fp32'][0]:.2f}x)"
    )
    print(f"int8 top answer equal to fp32's on {100 * agreement:.1f}% of the questions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
