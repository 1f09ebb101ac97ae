"""Static int8 on oneDNN's fused int8 product, in the 2-branch bf16 export: EM/F1 in two runtimes, and speed.

Each dense product of the 2-branch bf16 export (per block and branch: query-key-value, output, lin1 with its exact
GELU, lin2) becomes ``QuantizeV2`` (uint8, ``MIN_FIRST``, over a fixed range) and ``_QuantizedMatMul``: oneDNN's
int8 inner product with the bias, the GELU and the dequantization to bf16 fused into it, int8 weights with a
scale per output column. Each product's input range is its minimum and maximum over the windows of
``--calibration`` questions of the demo model's training articles (a seeded sample), the graph run eagerly in
bf16; the ranges are constants of the export, so an answer does not depend on its batch. The two branches'
products of one input share its quantization. Everything else is the bf16 export's.

``_QuantizedMatMul`` is an internal op of TensorFlow's oneDNN builds: the wheel and its C++ runtime register it,
and ``tf-qa validate`` reports it as neither TensorFlow core nor TF Text.

Prints EM/F1 on all the held-out questions of both exports, in-process (TF2) and in TensorFlow's C++ runtime
(``--native``), then ``ab_exports.py`` on the two (TF Serving's session, calls interleaved).

    python benchmarks/int8_fused.py --calibration 256 --output /tmp/int8-fused
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_setup import load_questions
from int8_dense import int8_columns, recorded_ranges
from served import cpu_name

from tf_qa import console
from tf_qa.arguments import positive_int

BRANCHES_BF16 = {"matmul_dtype": "bfloat16", "parallel_branches": 2, "window_length_multiple": 8}


def calibrated_ranges(span_logits, tokenizer, questions) -> dict:
    """Each bf16 product's input (min, max) by ``id`` of its kernel, over the windows of ``questions``."""
    key_and_rows = lambda rows, weights: (id(weights[0]), rows)  # noqa: E731
    return recorded_ranges(span_logits, tokenizer, questions, "_product_bf16", key_and_rows)


def _attrs(fused_ops: list[str]) -> dict:
    import tensorflow as tf

    attr = tf.compat.v1.AttrValue
    types = lambda *dtypes: attr(list=attr.ListValue(type=[d.as_datatype_enum for d in dtypes]))  # noqa: E731
    return {
        "T1": attr(type=tf.quint8.as_datatype_enum), "T2": attr(type=tf.qint8.as_datatype_enum),
        "Tbias": attr(type=tf.float32.as_datatype_enum), "U": attr(type=tf.float32.as_datatype_enum),
        "Tout": attr(type=tf.bfloat16.as_datatype_enum),
        "Tdevice_inputs": types(tf.quint8, tf.qint8, tf.float32), "Thost_inputs": types(*[tf.float32] * 4),
        "Tdevice_outputs": types(tf.bfloat16), "Thost_outputs": types(),
        "transpose_a": attr(b=False), "transpose_b": attr(b=False),
        "is_weight_const": attr(b=True), "is_bias_const": attr(b=True),
        "fused_ops": attr(list=attr.ListValue(s=[op.encode() for op in fused_ops])),
        "input_quant_mode": attr(s=b"MIN_FIRST"), "output_quant_mode": attr(s=b"MIN_FIRST"),
        "leakyrelu_alpha": attr(f=0.2),
    }  # fmt: skip


def fused_int8_product(ranges: dict, gelu_kernels: set[int]):
    """A ``_product_bf16(rows, (kernel, bias))`` in static int8 (``ranges`` by ``id`` of the kernel); the exact
    GELU fused in for the kernels of ``gelu_kernels`` (lin1's). bf16 rows in, bf16 out."""
    import tensorflow as tf

    quantized = {}  # (rows, range) -> uint8 rows: one quantization for the products that share an input

    def product(rows, weights):
        kernel, bias = (array.astype(np.float32) for array in weights)
        low, high = ranges[id(weights[0])]
        key = (rows.ref(), low, high)
        if key not in quantized:
            quantized[key] = tf.raw_ops.QuantizeV2(
                input=tf.cast(rows, tf.float32), min_range=low, max_range=high, T=tf.quint8, mode="MIN_FIRST"
            )[0]
        int8_kernel, scale = int8_columns(kernel)
        fused = ["BiasAdd", "GeluExact", "Dequantize"] if id(weights[0]) in gelu_kernels else ["BiasAdd", "Dequantize"]

        @tf.function(autograph=False)  # a graph to create the internal op in, also when called eagerly
        def int8_product(uint8_rows):
            inputs = [uint8_rows, tf.constant(int8_kernel, tf.qint8), tf.constant(bias)]
            inputs += [tf.constant(low), tf.constant(high), tf.constant(-scale), tf.constant(scale)]
            graph = tf.compat.v1.get_default_graph()
            op = graph.create_op("_QuantizedMatMul", inputs, [tf.bfloat16], name="QuantizedMatMul", attrs=_attrs(fused))
            return op.outputs[0]

        return tf.ensure_shape(int8_product(quantized[key]), [None, kernel.shape[1]])

    return product


def with_int8_products(model, tokenizer, calibration):
    """``model`` (a 2-branch bf16 ``QuestionAnsweringModel``) with its products in static int8, calibrated."""
    span_logits = model.span_logits
    ranges = calibrated_ranges(span_logits, tokenizer, calibration)
    lin1 = {id(branch.lin1[0]) for branches in span_logits._bf16_branches for branch in branches}
    span_logits._product_bf16 = fused_int8_product(ranges, lin1)
    # The GELU is inside lin1's int8 product now.
    span_logits.qa_model.config.activation = "gelu, fused into lin1's product"
    for block in span_logits.qa_model.distilbert.transformer.layer:
        block.ffn.activation = lambda rows: rows
    return model


def export(checkpoint: str, output: Path, calibration=None) -> Path:
    """The 2-branch bf16 export of ``checkpoint``, with int8 products calibrated on ``calibration`` if given."""
    from tf_qa.graph.model import QuestionAnsweringModel
    from tf_qa.graph.options import ExportOptions
    from tf_qa.saved_model.export import export_model

    options = ExportOptions(**BRANCHES_BF16)
    if calibration is None:
        return export_model(checkpoint, output, options=options, report=lambda _: None)
    plain = QuestionAnsweringModel.from_transformers

    def int8_model(qa_model, tokenizer, options):
        return with_int8_products(plain(qa_model, tokenizer, options), tokenizer, calibration)

    with mock.patch.object(QuestionAnsweringModel, "from_transformers", int8_model):
        return export_model(checkpoint, output, options=options, report=lambda _: None)


def held_out_scores(version_dir: Path, *runtime: str) -> dict:
    """``tf-qa evaluate`` on all the held-out questions: its JSON figures."""
    from tf_qa.checkpoints import HELD_OUT_TITLES
    from tf_qa.cli import main
    from tf_qa.squad import SQUAD_V1_PART

    out = io.StringIO()
    command = ["evaluate", "--squad", str(SQUAD_V1_PART), "--articles", *HELD_OUT_TITLES, "--json"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):  # its progress bar
        assert main([*command, "--saved-model", str(version_dir), *runtime]) == 0
    return json.loads(out.getvalue().strip().splitlines()[-1])


def answers_alone_and_batched(version_dir: Path, cases) -> tuple[int, float]:
    """TF Serving's session on ``cases`` alone and in batches of 16: on how many the top answer and its span are
    the same, and the largest difference of its score."""
    from ab_exports import session_caller

    call = session_caller(str(version_dir))
    batched = [call(cases[i : i + 16]) for i in range(0, len(cases), 16)]
    same, largest = 0, 0.0
    for i in range(len(cases)):
        alone, batch = call(cases[i : i + 1]), batched[i // 16]
        same += all(np.array_equal(alone[key][0], batch[key][i % 16]) for key in ("answer", "start", "end"))
        largest = max(largest, float(np.max(np.abs(alone["score"][0] - batch["score"][i % 16]))))
    return same, largest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibration", type=positive_int, default=256, help="training questions calibrating")
    parser.add_argument("--output", type=Path, default=None, help="folder for the two exports (default: temporary)")
    parser.add_argument("--questions", type=positive_int, default=200, help="held-out questions asked")
    parser.add_argument("--verbose", action="store_true", help="also show the libraries' own messages")
    args = parser.parse_args()
    if not args.verbose:
        console.quiet()
    from tf_qa.checkpoints import HELD_OUT_TITLES, make_trained_demo_checkpoint
    from tf_qa.squad import SQUAD_V1_PART, load_squad

    output = args.output or Path(tempfile.mkdtemp())
    checkpoint = make_trained_demo_checkpoint(output / "checkpoint")
    training = [q for q in load_squad(SQUAD_V1_PART) if q.title not in HELD_OUT_TITLES]
    calibration = random.Random(0).sample(training, args.calibration)
    cases, _ = load_questions(args.questions, held_out=True)
    print(f"{cpu_name()}; the trained demo model, calibrated on {len(calibration)} training questions")
    exports = {"bf16 2-branch": export(checkpoint, output / "bf16x2")}
    exports["int8 fused, static"] = export(checkpoint, output / "int8", calibration)
    for name, version_dir in exports.items():
        for runtime, flags in (("in-process", ()), ("C++ runtime", ("--native",))):
            scores = held_out_scores(version_dir, *flags)
            figures = f"EM {scores['exact_match']:5.2f}  F1 {scores['f1']:5.2f}  ({scores['total']} questions)"
            print(f"{name:18s} {runtime:12s} {figures}")
        same, largest = answers_alone_and_batched(version_dir, cases)
        print(f"{name:18s} alone and in batches of 16: same top answer {same}/{len(cases)}, score within {largest:.4f}")
    ab = [sys.executable, str(Path(__file__).with_name("ab_exports.py")), "--questions", str(args.questions)]
    for a, b in (("bf16 2-branch", "int8 fused, static"), ("int8 fused, static", "bf16 2-branch")):
        print(f"A = {a}, B = {b}:", flush=True)
        subprocess.run([*ab, str(exports[a]), str(exports[b])], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
