"""One transformer block's six dense products (query, key, value, output; the FFN's two) at width 384, in fp32,
bf16 and int8, one thread, weights as graph constants: what the int8 kernels save before a model's other ops.

int8 as ``benchmarks/int8_dense.py`` builds it from stock ops (``QuantizeV2`` to uint8, ``SCALED``;
``QuantizedMatMulWithBiasAndDequantize``; int8 weights with a scale per output column): ``static``, one fixed
activation range; ``per-token``, each row quantized by its own largest magnitude. Prints each variant's median
time and its largest error against fp32 (relative to fp32's largest output). For oneDNN's own time per kernel,
run it with ``ONEDNN_VERBOSE=1`` and sum the ``exec`` lines' last field by primitive.

    python benchmarks/int8_kernels.py --tokens 192
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from int8_dense import int8_columns, per_token_product, shifted_uint8_product
from served import cpu_name

from tf_qa import console
from tf_qa.arguments import positive_int

SHAPES = [(384, 384)] * 4 + [(384, 1536), (1536, 384)]


def block_products(variant: str, kernels: list[np.ndarray], static_range: float):
    """A ``tf.function`` of (rows of width 384, rows of width 1536) -> the six products in ``variant``."""
    import tensorflow as tf

    def product(rows, kernel):
        if variant == "fp32":
            return tf.matmul(rows, tf.constant(kernel))
        if variant == "bf16":
            bf16_rows, bf16_kernel = tf.cast(rows, tf.bfloat16), tf.constant(kernel.astype(tf.bfloat16.as_numpy_dtype))
            return tf.cast(tf.matmul(bf16_rows, bf16_kernel), tf.float32)
        weights, scale = int8_columns(kernel)
        if variant == "int8 per-token":
            return per_token_product(rows, weights, scale, tf.zeros(kernel.shape[1]))
        out = shifted_uint8_product(rows + static_range, 2 * static_range, weights, shift=static_range)
        return out * scale

    @tf.function
    def run(narrow, wide):
        return [product(narrow if kernel.shape[0] == 384 else wide, kernel) for kernel in kernels]

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=positive_int, default=192, help="rows a product takes (a window's tokens)")
    parser.add_argument("--repeats", type=positive_int, default=60)
    parser.add_argument("--verbose", action="store_true", help="also show the libraries' own messages")
    args = parser.parse_args()
    if not args.verbose:
        console.quiet()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(0)
    narrow = tf.constant(rng.standard_normal((args.tokens, 384)).astype(np.float32))
    wide = tf.constant(rng.standard_normal((args.tokens, 1536)).astype(np.float32))
    kernels = [(rng.standard_normal(shape) * 0.05).astype(np.float32) for shape in SHAPES]
    static_range = float(max(np.abs(narrow).max(), np.abs(wide).max()))
    print(f"{cpu_name()}; one block's six dense products, {args.tokens} rows, one thread")
    reference = None
    for variant in ("fp32", "bf16", "int8 static", "int8 per-token"):
        run = block_products(variant, kernels, static_range)
        outputs = [out.numpy() for out in run(narrow, wide)]
        reference = reference or outputs
        error = max(np.abs(o - r).max() / np.abs(r).max() for o, r in zip(outputs, reference))
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            run(narrow, wide)
            seconds.append(time.perf_counter() - started)
        print(f"{variant:15s} median {1000 * np.median(seconds):6.3f} ms  largest error against fp32 {error:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
