"""``DistilBertSpanLogits``: the forward pass of ``TFDistilBertForQuestionAnswering``, laid out for CPU serving.

Same weights (the transformers model's own variables, not copies) and the same maths as
transformers 4.57's ``TFDistilBertForQuestionAnswering.call`` at inference; only the shape of the graph
differs. Keras' ``Dense`` on a [B, L, dim] input runs ``Tensordot`` (Reshape, MatMul, Reshape, BiasAdd), and
Grappler's remapper cannot fuse a MatMul with a BiasAdd that a Reshape separates. Here the hidden states are
kept as [B*L, dim] between layers, so every dense layer is MatMul + BiasAdd (+ GELU), which the remapper fuses
into one oneDNN kernel (``_MklNativeFusedMatMul``, seen in the TF profiler on the loaded SavedModel). Layer
norms use the model's own gamma, beta and epsilon in the form the remapper fuses into ``_MklLayerNorm``
(``_layer_norm``).

Its logits agree with the transformers model's to ~3e-5 (benchmarks/README.md has what each fusion gained).

Opt-in, ``matmul_dtype="bfloat16"``: the transformer blocks run in bfloat16 (bf16 copies of the dense kernels and
layer-norm parameters as graph constants; each block's query, key and value projections as one product; the
scores scaled and masked inside their product; oneDNN's softmax and layer norm computing in fp32 inside; the
FFN's GELU inside lin1's bf16 MatMul); the hidden states stay bf16 from the embeddings' layer norm to the QA
head, which run in fp32. On CPUs with AMX or AVX512-BF16 oneDNN runs these on the bf16 units; elsewhere bf16
is emulated and slower. bfloat16 changes the logits (by ~1e-2), so it is never the default: ``tf-qa bench`` and
``tf-qa evaluate`` measure what it does to the answers and to EM/F1. With ``parallel_branches=N`` each block's
heads and FFN columns are split into N independent parts that TensorFlow's inter-op threads run side by side:
a lone window keeps N cores busy.

Opt-in, ``matmul_dtype="int8"``: the bfloat16 blocks with each dense product in static int8 over its calibrated
input range, its outlier channels divided into it (``tf_qa.graph.int8``; ``int8_calibration`` calibrates,
``tf_qa.saved_model.calibration`` at export).

Example:

>>> from transformers import DistilBertConfig, TFDistilBertForQuestionAnswering
>>> qa_model = TFDistilBertForQuestionAnswering(DistilBertConfig(dim=32, hidden_dim=64, n_layers=2, n_heads=2))
>>> span_logits = DistilBertSpanLogits(qa_model)
>>> start, end = span_logits(tf.constant([[101, 2054, 102, 3000, 102]]), tf.ones([1, 5], tf.int32))
>>> start.shape, end.shape
(TensorShape([1, 5]), TensorShape([1, 5]))
"""

from __future__ import annotations

import functools
import operator
from typing import NamedTuple

import numpy as np
import tensorflow as tf
import tf_keras

from tf_qa.defaults import MATMUL_DTYPES, REDUCED_MATMUL_DTYPES
from tf_qa.graph import int8


def is_supported(qa_model) -> bool:
    """Whether ``qa_model`` is a transformers TF DistilBERT QA model this layer can run."""
    try:
        from transformers import TFDistilBertForQuestionAnswering
    except ImportError:  # pragma: no cover - transformers is a dependency
        return False
    return isinstance(qa_model, TFDistilBertForQuestionAnswering) and qa_model.config.num_labels == 2


class _Product(NamedTuple):
    """One dense product of a block: its name (``layer_0/branch_0/qkv``; int8 ranges are recorded by it) and its
    kernel and bias (bf16 arrays in a bfloat16 layer, float32 in an int8 one)."""

    name: str
    kernel: np.ndarray
    bias: np.ndarray


class _BranchWeights(NamedTuple):
    """One part of a block's reduced-precision products (``parallel_branches``): its heads' query-key-value and
    output projections and its share of the FFN's inner columns."""

    heads: int
    qkv: _Product
    out: _Product
    lin1: _Product
    lin2: _Product


class DistilBertSpanLogits(tf_keras.layers.Layer):
    """Start and end logits of a ``TFDistilBertForQuestionAnswering``, with fusable dense layers.

    Args:
        qa_model: a built or unbuilt ``TFDistilBertForQuestionAnswering``; its variables are used in place.
        matmul_dtype: ``"float32"`` (exact), ``"bfloat16"`` or ``"int8"`` (opt-in, see the module docstring).
        parallel_branches: bfloat16 or int8 only: each block runs as this many independent parts, its heads and
            its FFN's inner columns split between them, whose outputs are summed; TensorFlow's inter-op threads
            run the parts side by side, so that a lone window keeps more than one core busy.
        int8_ranges: int8 only (and needed there): each product's input (low, high) by name, from
            ``int8_calibration`` of the bfloat16 layer with the same ``parallel_branches``.
        int8_channel_divisors: int8 only: {outlier input channel: divisor} by product name
            (``int8_calibration``'s too; none where not given).

    Call arguments:
        input_ids: [B, L] int32 token ids.
        attention_mask: [B, L] int, 1 on real tokens, 0 on padding.

    Returns:
        ``(start_logits, end_logits)``, each [B, L] float32.
    """

    def __init__(
        self,
        qa_model,
        *,
        matmul_dtype: str = "float32",
        parallel_branches: int = 1,
        int8_ranges=None,
        int8_channel_divisors=None,
        **kwargs,
    ):
        super().__init__(trainable=False, **kwargs)
        if not is_supported(qa_model):
            raise ValueError(f"{type(qa_model).__name__} is not a TFDistilBertForQuestionAnswering")
        if matmul_dtype not in MATMUL_DTYPES:
            raise ValueError(f"matmul_dtype must be one of {MATMUL_DTYPES}; got {matmul_dtype!r}")
        if parallel_branches != 1 and matmul_dtype not in REDUCED_MATMUL_DTYPES:
            raise ValueError("parallel_branches above 1 needs matmul_dtype='bfloat16' or 'int8'")
        if (matmul_dtype == "int8") != (int8_ranges is not None):
            raise ValueError("matmul_dtype='int8' needs int8_ranges (calibrated at export), and only int8 takes them")
        if not 1 <= parallel_branches <= qa_model.config.n_heads:
            raise ValueError(f"parallel_branches must be in [1, n_heads={qa_model.config.n_heads}]")
        if not qa_model.built:
            qa_model(qa_model.dummy_inputs, training=False)
        self.qa_model = qa_model
        config = qa_model.config
        self.dim = config.dim
        self.n_heads = config.n_heads
        self.dim_per_head = config.dim // config.n_heads
        self.matmul_dtype = matmul_dtype
        self.parallel_branches = parallel_branches
        # The FFN's activation is the exact GELU, which the reduced-precision lin1 products fuse in.
        self._exact_gelu = config.activation == "gelu"
        # bf16 copies of the dense kernels and biases and of the layer-norm gammas and betas. They enter the graph
        # as constants, not variables: oneDNN reorders a constant kernel once into the blocked layout its AMX
        # kernels need (brgemm), where a variable's plain layout gets the generic bf16 GEMM, much slower.
        self._bf16_norms: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        # By block, its products in ``parallel_branches`` parts (one part: the whole block).
        self._branches: tuple[tuple[_BranchWeights, ...], ...] = ()
        self._int8_products: dict[str, int8.Int8Product] = {}
        self._range_recorder: int8.RangeRecorder | None = None  # set while int8_calibration runs
        if matmul_dtype in REDUCED_MATMUL_DTYPES:
            blocks = qa_model.distilbert.transformer.layer
            self._bf16_norms = {
                id(norm): (_as_bf16(norm.gamma), _as_bf16(norm.beta))
                for block in blocks
                for norm in (block.sa_layer_norm, block.output_layer_norm)
            }
            self._branches = tuple(self._block_branches(index, block) for index, block in enumerate(blocks))
        if matmul_dtype == "int8":
            self._int8_products = self._int8(int8_ranges, int8_channel_divisors or {})

    def _int8(self, ranges: dict, channel_divisors: dict) -> dict[str, int8.Int8Product]:
        """Every block's products in int8 by name; lin1's with the exact GELU fused in."""
        products = {}
        for branch in (branch for branches in self._branches for branch in branches):
            for product in (branch.qkv, branch.out, branch.lin1, branch.lin2):
                if product.name not in ranges:
                    raise ValueError(f"int8_ranges has no range for {product.name} (calibrated for another layout?)")
                products[product.name] = int8.Int8Product(
                    *product[1:],
                    ranges[product.name],
                    gelu=self._exact_gelu and product is branch.lin1,
                    channel_divisors=channel_divisors.get(product.name),
                )
        return products

    def int8_calibration(self, windows) -> tuple[dict[str, tuple[float, float]], dict[str, dict[int, float]]]:
        """Each product's input range and outlier channels' divisors by name (``int8.RangeRecorder``) over
        ``windows`` ((input_ids, attention_mask) [B, L] arrays), run eagerly: what an int8 layer of the same
        ``parallel_branches`` takes as ``int8_ranges`` and ``int8_channel_divisors``. bfloat16 only."""
        if self.matmul_dtype != "bfloat16":
            raise ValueError("int8_calibration runs the bfloat16 layer")
        self._range_recorder = int8.RangeRecorder()
        try:
            for input_ids, attention_mask in windows:
                self(tf.constant(input_ids, tf.int32), tf.constant(attention_mask, tf.int32))
            return self._range_recorder.calibration()
        finally:
            self._range_recorder = None

    def _block_branches(self, index: int, block) -> tuple[_BranchWeights, ...]:
        """A block's bf16 products in ``parallel_branches`` parts whose outputs sum to the block's: each part has
        a share of the heads (their query, key and value columns as one product, their rows of the output
        projection) and of the FFN's inner columns (lin1's columns, lin2's rows). The output biases go with the
        first part; the others add zeros, so that every part is the MatMul + BiasAdd that the remapper fuses into
        one oneDNN kernel, as the unsplit products are."""
        attention, ffn = block.attention, block.ffn
        qkv_layers = (attention.q_lin, attention.k_lin, attention.v_lin)
        head_parts = np.array_split(np.arange(self.n_heads), self.parallel_branches)
        inner_parts = np.array_split(np.arange(ffn.lin1.kernel.shape[1]), self.parallel_branches)
        zeros = np.zeros(self.dim, np.float32)
        # bfloat16 multiplies bf16 copies; int8 quantizes the float32 weights itself.
        convert = _as_bf16 if self.matmul_dtype == "bfloat16" else (lambda array: np.asarray(array, np.float32))
        branches = []
        for part, (heads, inner) in enumerate(zip(head_parts, inner_parts)):
            dims = (heads[:, np.newaxis] * self.dim_per_head + np.arange(self.dim_per_head)).ravel()
            qkv_kernel = np.concatenate([layer.kernel.numpy()[:, dims] for layer in qkv_layers], axis=-1)
            qkv_bias = np.concatenate([layer.bias.numpy()[dims] for layer in qkv_layers])
            out_bias, lin2_bias = (
                (attention.out_lin.bias.numpy(), ffn.lin2.bias.numpy()) if part == 0 else (zeros, zeros)
            )
            weights = {
                "qkv": (qkv_kernel, qkv_bias),
                "out": (attention.out_lin.kernel.numpy()[dims], out_bias),
                "lin1": (ffn.lin1.kernel.numpy()[:, inner], ffn.lin1.bias.numpy()[inner]),
                "lin2": (ffn.lin2.kernel.numpy()[inner], lin2_bias),
            }
            products = [
                _Product(f"layer_{index}/branch_{part}/{name}", *map(convert, pair)) for name, pair in weights.items()
            ]
            branches.append(_BranchWeights(len(heads), *products))
        return tuple(branches)

    @staticmethod
    def _dense(layer: tf_keras.layers.Dense, rows: tf.Tensor) -> tf.Tensor:
        """A Dense layer's kernel and bias on [N, in] float32 rows, as MatMul + BiasAdd (which TF fuses)."""
        return tf.nn.bias_add(tf.matmul(rows, layer.kernel), layer.bias)

    def _product(self, rows: tf.Tensor, product: _Product, activation=None) -> tf.Tensor:
        """MatMul + BiasAdd (+ ``activation``) of bf16 rows on one of a block's products; bf16 out. bfloat16: its
        bf16 kernel and bias as graph constants; int8: its ``Int8Product`` (whose fused GELU is the activation)."""
        if self._range_recorder is not None:
            self._range_recorder.record(product.name, rows)
        if self.matmul_dtype == "int8":
            int8_product = self._int8_products[product.name]
            out = int8_product(self._uint8_inputs(rows, int8_product))
            return out if activation is None or int8_product.gelu else activation(out)
        out = tf.nn.bias_add(tf.matmul(rows, tf.constant(product.kernel)), tf.constant(product.bias))
        return out if activation is None else activation(out)

    @staticmethod
    def _layer_norm(rows: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: float) -> tf.Tensor:
        """A layer norm over the last axis of [N, dim] rows (float32 or bfloat16, as ``gamma`` and ``beta``),
        in the form oneDNN fuses.

        Keras runs DistilBERT's layer norms (epsilon 1e-12) as eight separate ops. Written as Keras' own fused
        form -- each row a batch-norm channel of a [1, N, dim, 1] NCHW FusedBatchNormV3 in training mode, then
        gamma and beta -- Grappler's remapper turns it into one ``_MklLayerNorm``, which computes its statistics
        in float32 for bf16 rows too. Training-mode batch norm normalises each channel by its own mean and biased
        variance, which is exactly a layer norm over the row.

        The remapper fuses only when it can prove the output has the input's shape; inside the window-group
        loop of a TF1 session (how TF Serving runs it) it cannot see the variables' shapes, so the
        ``ensure_shape`` calls state them.
        """
        dim = [gamma.shape[0]]
        rows = tf.ensure_shape(rows, [None] + dim)
        count = tf.shape(rows)[:1]
        normalized, *_ = tf.raw_ops.FusedBatchNormV3(
            x=tf.reshape(rows, tf.concat([[1], count, [-1, 1]], axis=0)),
            scale=tf.fill(count, 1.0),
            offset=tf.fill(count, 0.0),
            mean=tf.constant([], tf.float32),
            variance=tf.constant([], tf.float32),
            epsilon=epsilon,
            data_format="NCHW",
            is_training=True,
        )
        return tf.reshape(normalized, tf.shape(rows)) * tf.ensure_shape(gamma, dim) + tf.ensure_shape(beta, dim)

    def _norm(self, norm: tf_keras.layers.LayerNormalization, rows: tf.Tensor) -> tf.Tensor:
        """``norm`` on [N, dim] rows: its variables on float32 rows, its bf16 copies on bf16 rows."""
        if rows.dtype == tf.bfloat16:
            gamma, beta = (tf.constant(array) for array in self._bf16_norms[id(norm)])
            return self._layer_norm(rows, gamma, beta, norm.epsilon)
        return self._layer_norm(rows, norm.gamma, norm.beta, norm.epsilon)

    def call(self, input_ids: tf.Tensor, attention_mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        distilbert = self.qa_model.distilbert
        batch, length = tf.shape(input_ids)[0], tf.shape(input_ids)[1]
        as_rows = lambda x: tf.reshape(x, [-1, self.dim])  # noqa: E731

        # The name scopes are the stages a profile (benchmarks/breakdown.py) reports.
        with tf.name_scope("embeddings"):
            embeddings = distilbert.embeddings
            hidden = tf.gather(embeddings.weight, input_ids) + tf.gather(
                embeddings.position_embeddings, tf.range(length)[tf.newaxis, :]
            )
            hidden = self._norm(embeddings.LayerNorm, as_rows(hidden))
            # The attention mask as transformers applies it: scores - 1e30 * (1 - mask).
            mask = tf.cast(tf.reshape(attention_mask, [batch, 1, 1, length]), tf.float32)
        if self.matmul_dtype in REDUCED_MATMUL_DTYPES:
            hidden = self._blocks_bf16(hidden, mask, batch, length)
        else:
            for block in distilbert.transformer.layer:
                with tf.name_scope("attention"):
                    attended = self._attention(block.attention, hidden, mask, batch, length)
                    attended = self._norm(block.sa_layer_norm, attended + hidden)
                with tf.name_scope("ffn"):
                    inner = block.ffn.activation(self._dense(block.ffn.lin1, attended))
                    hidden = self._norm(block.output_layer_norm, self._dense(block.ffn.lin2, inner) + attended)
        with tf.name_scope("qa_head"):
            logits = tf.reshape(self._dense(self.qa_model.qa_outputs, hidden), [batch, length, 2])
            return logits[:, :, 0], logits[:, :, 1]

    def _blocks_bf16(self, hidden: tf.Tensor, mask: tf.Tensor, batch, length) -> tf.Tensor:
        """The transformer blocks with bf16 (or int8) products, on and to float32 [B*L, dim] rows.

        Between the blocks the hidden states stay bf16 (layer norms and residual sums included): no casts
        in and out of each product, and the layer norm's statistics are still float32 inside oneDNN.
        """
        self._uint8_inputs = int8.Uint8Inputs()
        # The mask as a bias, made once for every block (0 or -1e30: exact where it is 0).
        mask_bias = tf.cast(-1e30 * (1.0 - mask), tf.bfloat16)
        hidden = tf.cast(hidden, tf.bfloat16)
        # The exact GELU fuses into lin1's bf16 MatMul (computed on its fp32 accumulator).
        for block, branches in zip(self.qa_model.distilbert.transformer.layer, self._branches):
            activation = (lambda x: tf.nn.gelu(x, approximate=False)) if self._exact_gelu else block.ffn.activation
            with tf.name_scope("attention"):
                parts = [self._attention_bf16(branch, hidden, mask_bias, batch, length) for branch in branches]
                attended = self._residual_norm(block.sa_layer_norm, parts, hidden)
            with tf.name_scope("ffn"):
                inner = [self._product(attended, branch.lin1, activation) for branch in branches]
                parts = [self._product(rows, branch.lin2) for rows, branch in zip(inner, branches)]
                hidden = self._residual_norm(block.output_layer_norm, parts, attended)
        return tf.cast(hidden, tf.float32)

    def _residual_norm(self, norm, parts: list[tf.Tensor], residual: tf.Tensor) -> tf.Tensor:
        """``norm`` of the branches' ``parts`` summed with ``residual``, [N, dim] rows.

        int8 with parallel branches: the two halves of the rows are summed and normalized side by side on the
        inter-op threads, then joined (``Uint8Inputs.joined``: the products that take these rows quantize them
        half by half too). Between blocks these steps kept one core idle; each works row by row, so the outputs
        are the same as on the whole rows. (The bf16 blocks measured no faster so, and their outputs changed.)
        """
        if len(parts) == 1 or self.matmul_dtype != "int8":
            return self._norm(norm, _summed(parts) + residual)
        rows = tf.shape(residual)[0]
        split = [rows // 2, rows - rows // 2]
        pieces = [tf.split(tensor, split) for tensor in [*parts, residual]]
        halves = [self._norm(norm, _summed([part[i] for part in pieces[:-1]]) + pieces[-1][i]) for i in range(2)]
        return self._uint8_inputs.joined(halves)

    def _attention(self, attention, hidden, mask, batch, length):
        def heads(x):  # [B*L, dim] -> [B, heads, L, dim_per_head]
            return tf.transpose(tf.reshape(x, [batch, length, self.n_heads, self.dim_per_head]), [0, 2, 1, 3])

        query = heads(self._dense(attention.q_lin, hidden)) * tf.math.rsqrt(tf.cast(self.dim_per_head, tf.float32))
        key = heads(self._dense(attention.k_lin, hidden))
        value = heads(self._dense(attention.v_lin, hidden))
        scores = tf.matmul(query, key, transpose_b=True) - 1e30 * (1.0 - mask)
        weights = tf.nn.softmax(scores + 1e-9, axis=-1)  # transformers' stable_softmax
        context = tf.reshape(tf.transpose(tf.matmul(weights, value), [0, 2, 1, 3]), [-1, self.dim])
        return self._dense(attention.out_lin, context)

    def _attention_bf16(self, branch: _BranchWeights, hidden, mask_bias, batch, length):
        """``_attention`` on bf16 rows for the heads of one ``branch``, bf16 out (the part of the output projection
        its heads make): one query-key-value MatMul, then scores, softmax and weighted values; ``mask_bias``:
        [B, 1, 1, L] bf16, 0 on tokens and -1e30 on padding."""
        qkv = self._product(hidden, branch.qkv)
        # [B*L, 3*heads*dim_per_head] -> [3, B, heads, L, dim_per_head]: one transpose for the three.
        qkv = tf.reshape(qkv, [batch, length, 3, branch.heads, self.dim_per_head])
        qkv = tf.transpose(qkv, [2, 0, 3, 1, 4])
        # Scaled and masked in this form, Grappler's remapper fuses the three into one oneDNN kernel
        # (_MklFusedBatchMatMulV2: the scale and the mask applied to its fp32 accumulator).
        scale = tf.constant(1.0 / np.sqrt(self.dim_per_head), tf.bfloat16)
        scores = tf.matmul(qkv[0], qkv[1], transpose_b=True) * scale + mask_bias
        # oneDNN's bf16 softmax computes in fp32 and rounds its output, the weights the bf16 product takes anyway.
        weights = tf.nn.softmax(scores, axis=-1)
        context = tf.transpose(tf.matmul(weights, qkv[2]), [0, 2, 1, 3])
        return self._product(tf.reshape(context, [-1, branch.heads * self.dim_per_head]), branch.out)


def _as_bf16(array) -> np.ndarray:
    return tf.cast(array, tf.bfloat16).numpy()


def _summed(parts: list[tf.Tensor]) -> tf.Tensor:
    """The parts' sum, left to right (one part: itself, so that one branch is exactly the unsplit block)."""
    return functools.reduce(operator.add, parts)
