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
is emulated and slower. It changes the logits (by ~1e-2), so it is never the default: ``tf-qa bench`` and
``tf-qa evaluate`` measure what it does to the answers and to EM/F1.

Example:

>>> from transformers import DistilBertConfig, TFDistilBertForQuestionAnswering
>>> qa_model = TFDistilBertForQuestionAnswering(DistilBertConfig(dim=32, hidden_dim=64, n_layers=2, n_heads=2))
>>> span_logits = DistilBertSpanLogits(qa_model)
>>> start, end = span_logits(tf.constant([[101, 2054, 102, 3000, 102]]), tf.ones([1, 5], tf.int32))
>>> start.shape, end.shape
(TensorShape([1, 5]), TensorShape([1, 5]))
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras

from tf_qa.defaults import MATMUL_DTYPES


def is_supported(qa_model) -> bool:
    """Whether ``qa_model`` is a transformers TF DistilBERT QA model this layer can run."""
    try:
        from transformers import TFDistilBertForQuestionAnswering
    except ImportError:  # pragma: no cover - transformers is a dependency
        return False
    return isinstance(qa_model, TFDistilBertForQuestionAnswering) and qa_model.config.num_labels == 2


class DistilBertSpanLogits(tf_keras.layers.Layer):
    """Start and end logits of a ``TFDistilBertForQuestionAnswering``, with fusable dense layers.

    Args:
        qa_model: a built or unbuilt ``TFDistilBertForQuestionAnswering``; its variables are used in place.
        matmul_dtype: ``"float32"`` (exact) or ``"bfloat16"`` (opt-in, see the module docstring).

    Call arguments:
        input_ids: [B, L] int32 token ids.
        attention_mask: [B, L] int, 1 on real tokens, 0 on padding.

    Returns:
        ``(start_logits, end_logits)``, each [B, L] float32.
    """

    def __init__(self, qa_model, *, matmul_dtype: str = "float32", **kwargs):
        super().__init__(trainable=False, **kwargs)
        if not is_supported(qa_model):
            raise ValueError(f"{type(qa_model).__name__} is not a TFDistilBertForQuestionAnswering")
        if matmul_dtype not in MATMUL_DTYPES:
            raise ValueError(f"matmul_dtype must be one of {MATMUL_DTYPES}; got {matmul_dtype!r}")
        if not qa_model.built:
            qa_model(qa_model.dummy_inputs, training=False)
        self.qa_model = qa_model
        config = qa_model.config
        self.dim = config.dim
        self.n_heads = config.n_heads
        self.dim_per_head = config.dim // config.n_heads
        self.matmul_dtype = matmul_dtype
        # bf16 copies of the kernels and biases of _encoder_dense_layers() and of the blocks' layer-norm gammas
        # and betas, by id of the layer. They enter the graph as constants, not variables: oneDNN reorders a constant
        # kernel once into the blocked layout its AMX kernels need (brgemm), where a variable's plain layout gets
        # the generic bf16 GEMM, much slower.
        self._bf16_dense: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._bf16_norms: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        # bf16: each block's query, key and value projections as one [dim, 3*dim] product, by block.
        self._qkv_bf16: tuple[tuple[np.ndarray, np.ndarray], ...] = ()
        if matmul_dtype == "bfloat16":
            as_bf16 = lambda tensor: tf.cast(tensor, tf.bfloat16).numpy()  # noqa: E731
            blocks = qa_model.distilbert.transformer.layer
            self._bf16_dense = {
                id(layer): (as_bf16(layer.kernel), as_bf16(layer.bias)) for layer in self._encoder_dense_layers()
            }
            self._bf16_norms = {
                id(norm): (as_bf16(norm.gamma), as_bf16(norm.beta))
                for block in blocks
                for norm in (block.sa_layer_norm, block.output_layer_norm)
            }
            self._qkv_bf16 = tuple(
                tuple(
                    as_bf16(np.concatenate([q, k, v], axis=-1))
                    for q, k, v in (
                        (a.q_lin.kernel, a.k_lin.kernel, a.v_lin.kernel),
                        (a.q_lin.bias, a.k_lin.bias, a.v_lin.bias),
                    )
                )
                for a in (block.attention for block in blocks)
            )

    def _encoder_dense_layers(self) -> list[tf_keras.layers.Dense]:
        """The dense layers that multiply in bf16 one by one (query, key and value go as one, ``_qkv_bf16``)."""
        layers = []
        for block in self.qa_model.distilbert.transformer.layer:
            layers += [block.attention.out_lin, block.ffn.lin1, block.ffn.lin2]
        return layers

    @staticmethod
    def _dense(layer: tf_keras.layers.Dense, rows: tf.Tensor) -> tf.Tensor:
        """A Dense layer's kernel and bias on [N, in] float32 rows, as MatMul + BiasAdd (which TF fuses)."""
        return tf.nn.bias_add(tf.matmul(rows, layer.kernel), layer.bias)

    def _dense_bf16(self, layer: tf_keras.layers.Dense, rows: tf.Tensor) -> tf.Tensor:
        """MatMul + BiasAdd of bf16 rows on the layer's bf16 kernel copy (graph constants); bf16 out."""
        kernel, bias = self._bf16_dense[id(layer)]
        return tf.nn.bias_add(tf.matmul(rows, tf.constant(kernel)), tf.constant(bias))

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
        if self.matmul_dtype == "bfloat16":
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
        """The transformer blocks with bf16 products, on and to float32 [B*L, dim] rows.

        Between the blocks the hidden states stay bf16 (layer norms and residual sums included): no casts
        in and out of each product, and the layer norm's statistics are still float32 inside oneDNN.
        """
        # The mask as a bias, made once for every block (0 or -1e30: exact where it is 0).
        mask_bias = tf.cast(-1e30 * (1.0 - mask), tf.bfloat16)
        hidden = tf.cast(hidden, tf.bfloat16)
        # The exact GELU fuses into lin1's bf16 MatMul (computed on its fp32 accumulator).
        gelu = self.qa_model.config.activation == "gelu"
        for index, block in enumerate(self.qa_model.distilbert.transformer.layer):
            with tf.name_scope("attention"):
                attended = self._attention_bf16(index, block.attention, hidden, mask_bias, batch, length)
                attended = self._norm(block.sa_layer_norm, attended + hidden)
            with tf.name_scope("ffn"):
                inner = self._dense_bf16(block.ffn.lin1, attended)
                inner = tf.nn.gelu(inner, approximate=False) if gelu else block.ffn.activation(inner)
                hidden = self._norm(block.output_layer_norm, self._dense_bf16(block.ffn.lin2, inner) + attended)
        return tf.cast(hidden, tf.float32)

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

    def _attention_bf16(self, index, attention, hidden, mask_bias, batch, length):
        """``_attention`` on bf16 rows, bf16 out: one query-key-value MatMul, then scores, softmax and weighted
        values; ``mask_bias``: [B, 1, 1, L] bf16, 0 on tokens and -1e30 on padding."""
        kernel, bias = self._qkv_bf16[index]
        qkv = tf.nn.bias_add(tf.matmul(hidden, tf.constant(kernel)), tf.constant(bias))
        # [B*L, 3*dim] -> [3, B, heads, L, dim_per_head]: one transpose for the three.
        qkv = tf.transpose(tf.reshape(qkv, [batch, length, 3, self.n_heads, self.dim_per_head]), [2, 0, 3, 1, 4])
        # Scaled and masked in this form, Grappler's remapper fuses the three into one oneDNN kernel
        # (_MklFusedBatchMatMulV2: the scale and the mask applied to its fp32 accumulator).
        scale = tf.constant(1.0 / np.sqrt(self.dim_per_head), tf.bfloat16)
        scores = tf.matmul(qkv[0], qkv[1], transpose_b=True) * scale + mask_bias
        # oneDNN's bf16 softmax computes in fp32 and rounds its output, the weights the bf16 product takes anyway.
        weights = tf.nn.softmax(scores, axis=-1)
        context = tf.reshape(tf.transpose(tf.matmul(weights, qkv[2]), [0, 2, 1, 3]), [-1, self.dim])
        return self._dense_bf16(attention.out_lin, context)
