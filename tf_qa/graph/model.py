"""``QuestionAnsweringModel``: a transformers TF QA model with the whole pipeline in the graph.

Raw question and context strings go in; the answer text with its character offsets and score comes out,
the same as ``transformers.pipeline("question-answering")`` on the same checkpoint. The model has three
serving signatures (see ``signatures``), every input and output batched along dim 0 so that TF Serving's
gRPC and REST (row and columnar) formats all work.

Example:

>>> model = QuestionAnsweringModel.from_pretrained("distilbert-base-uncased-distilled-squad")  # doctest: +SKIP
>>> out = model.answer(tf.constant(["Where do I live?"]), tf.constant(["I live in Paris."]))  # doctest: +SKIP
>>> out.answer.numpy()[0, 0], out.start.numpy()[0, 0], out.end.numpy()[0, 0]                  # doctest: +SKIP
(b'Paris', 10, 15)
"""

from __future__ import annotations

import contextlib
from typing import Any

import tensorflow as tf
import tf_keras
from grpc import StatusCode
from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
from tf_keras.src.saving.legacy.saved_model.utils import keras_option_scope

from tf_qa.errors import TFQAError
from tf_qa.graph import answers as answers_lib
from tf_qa.graph import inputs as inputs_lib
from tf_qa.graph import window_groups
from tf_qa.graph import windows as windows_lib
from tf_qa.graph.distilbert import DistilBertSpanLogits, is_supported
from tf_qa.graph.options import ExportOptions
from tf_qa.graph.spans import SpanExtractor
from tf_qa.graph.tokenization import WordPieceTokenizer
from tf_qa.signatures import SERVING_DEFAULT, SIGNATURES, TOKEN_SPANS_SIGNATURE, TOP_K_SIGNATURE


class CheckpointError(TFQAError, ValueError):
    """A checkpoint that cannot be loaded, or that tf-qa does not serve; the message names it and says why."""

    code = StatusCode.FAILED_PRECONDITION


def load_checkpoint(name_or_path: str, *, from_pt: bool = False) -> tuple[Any, Any]:
    """A transformers DistilBERT question-answering checkpoint (hub name or local folder): its TF model and fast
    tokenizer, after checking from its config that it is one (CheckpointError otherwise)."""
    from transformers import AutoConfig, AutoTokenizer, TFAutoModelForQuestionAnswering

    try:
        config = AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot load checkpoint {name_or_path!r}: {error}") from None
    if config.model_type != "distilbert":
        raise CheckpointError(
            f"{name_or_path!r} is a {config.model_type!r} model; tf-qa exports DistilBERT question-answering "
            "checkpoints (models that take token_type_ids, like BERT, are not supported)"
        )
    architectures = config.architectures or []
    if architectures and not any(a.endswith("ForQuestionAnswering") for a in architectures):
        raise CheckpointError(f"{name_or_path!r} is not a question-answering model (architectures: {architectures})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, use_fast=True)
        qa_model = TFAutoModelForQuestionAnswering.from_pretrained(name_or_path, from_pt=from_pt)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot load checkpoint {name_or_path!r}: {error}") from None
    return qa_model, tokenizer


def _input_specs(signature_name: str) -> list[tf.TensorSpec]:
    """The signature's inputs as ``tf_qa.signatures`` states them, in order."""
    inputs = SIGNATURES[signature_name].inputs
    return [tf.TensorSpec(spec.shape, spec.dtype, name=name) for name, spec in inputs.items()]


class QuestionAnsweringModel(tf_keras.Model):
    """Extractive QA from raw text: tokenizer, doc-stride windows, QA model, span extractor, merging.

    Args:
        qa_model: a transformers TF model for question answering taking ``input_ids`` and
            ``attention_mask`` (``TFDistilBertForQuestionAnswering``).
        tokenizer: the in-graph tokenizer built from the checkpoint's tokenizer.
        cls_id, sep_id: ids of [CLS] and [SEP].
        options: what the export fixes (``tf_qa.graph.options.ExportOptions``; ``max_seq_len`` must be set).
    """

    def __init__(
        self,
        qa_model: tf_keras.Model,
        tokenizer: WordPieceTokenizer,
        *,
        cls_id: int,
        sep_id: int,
        options: ExportOptions,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if options.max_seq_len is None:
            raise ValueError("options.max_seq_len must be set (ExportOptions.with_max_seq_len)")
        self.qa_model = qa_model
        # DistilBERT runs through a layout whose dense layers TF can fuse; other models run as they are.
        distilbert = is_supported(qa_model)
        if options.matmul_dtype != "float32" and not distilbert:
            raise ValueError(f"matmul_dtype={options.matmul_dtype!r} needs a DistilBERT QA model")
        self.span_logits = (
            DistilBertSpanLogits(
                qa_model,
                matmul_dtype=options.matmul_dtype,
                parallel_branches=options.parallel_branches,
                int8_ranges=options.int8_ranges,
                int8_channel_divisors=options.int8_channel_divisors,
            )
            if distilbert
            else None
        )
        self.options = options
        self.tokenizer = tokenizer
        self.span_extractor = SpanExtractor()
        self.cls_id = cls_id
        self.sep_id = sep_id
        # token_spans takes windows of any length; positions past the model's embeddings do not exist.
        self.max_positions = getattr(qa_model.config, "max_position_embeddings", options.max_seq_len)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls, name_or_path: str, *, from_pt: bool = False, options: ExportOptions | None = None
    ) -> QuestionAnsweringModel:
        """Loads a transformers QA checkpoint (hub name or local folder) and its fast tokenizer, checked
        (``load_checkpoint``)."""
        qa_model, tokenizer = load_checkpoint(name_or_path, from_pt=from_pt)
        return cls.from_transformers(qa_model, tokenizer, options)

    @classmethod
    def from_transformers(cls, qa_model, tokenizer, options: ExportOptions | None = None) -> QuestionAnsweringModel:
        """Wraps an already loaded transformers TF QA model and fast tokenizer."""
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("a fast (Rust) tokenizer is required: its normalizer defines the in-graph tokenizer")
        if getattr(tokenizer, "padding_side", "right") != "right":
            raise ValueError("only question-first tokenizers (padding_side='right') are supported")
        if "token_type_ids" in tokenizer.model_input_names:
            raise ValueError(
                f"{type(qa_model).__name__} takes token_type_ids; only DistilBERT-style models "
                "(input_ids + attention_mask) are supported"
            )
        options = (options or ExportOptions()).with_max_seq_len(tokenizer.model_max_length)
        return cls(
            qa_model,
            WordPieceTokenizer.from_transformers(tokenizer),
            cls_id=tokenizer.cls_token_id,
            sep_id=tokenizer.sep_token_id,
            options=options,
        )

    def get_config(self) -> dict:
        """The export options, as recorded in the export's metadata."""
        return self.options.as_dict()

    # ------------------------------------------------------------------ computation
    def logits(self, input_ids: tf.Tensor, attention_mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Start and end logits [W, L] of the wrapped model."""
        if self.span_logits is not None:
            return self.span_logits(input_ids, attention_mask)
        outputs = self.qa_model(input_ids=input_ids, attention_mask=attention_mask, training=False)
        return outputs.start_logits, outputs.end_logits

    def grouped_logits(self, input_ids: tf.Tensor, attention_mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``logits`` of many windows, run in groups of similar length, each padded to a multiple of
        ``window_length_multiple`` tokens (``tf_qa.graph.window_groups``)."""

        def padded_logits(ids: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            multiple = self.options.window_length_multiple
            return window_groups.padded_logits(self.logits, ids, mask, multiple, self.options.max_seq_len)

        if self.options.window_group_size == 0:
            return padded_logits(input_ids, attention_mask)
        return window_groups.grouped_logits(padded_logits, input_ids, attention_mask, self.options.window_group_size)

    def answer(
        self,
        question: tf.Tensor,
        context: tf.Tensor,
        top_k: tf.Tensor | None = None,
        max_answer_len: tf.Tensor | None = None,
        handle_impossible_answer: tf.Tensor | None = None,
    ) -> answers_lib.Answers:
        """Answers B questions, each over its context.

        Args:
            question, context: [B] tf.string, UTF-8.
            top_k: [B] int32 answers wanted (default 1).
            max_answer_len: [B] int32 longest answer in tokens (default: the model's).
            handle_impossible_answer: [B] bool (default: the model's).

        Returns:
            ``Answers`` [B, K] with K = max(top_k), at least 1.

        Raises:
            tf.errors.InvalidArgumentError naming the problem for bad input or a request over ``limits``.
        """
        # The name scopes are the stages a profile (benchmarks/breakdown.py) reports.
        with tf.name_scope("inputs"):
            question, context, top_k, max_answer_len, handle_impossible_answer = inputs_lib.checked_texts(
                self.options, question, context, top_k, max_answer_len, handle_impossible_answer
            )
            batch = tf.shape(question)[0]
        with tf.name_scope("tokenization"):
            tokens = self.tokenizer(tf.concat([question, context], axis=0))
            question_ids, context_ids = inputs_lib.checked_token_ids(
                self.options, tokens.token_ids[:batch], tokens.token_ids[batch:]
            )
        with tf.name_scope("windows"):
            windows = windows_lib.make_windows(
                question_ids,
                context_ids,
                max_seq_len=self.options.max_seq_len,
                doc_stride=self.options.doc_stride,
                cls_id=self.cls_id,
                sep_id=self.sep_id,
            )
        with tf.name_scope("model"):
            start_logits, end_logits = self.grouped_logits(windows.input_ids, windows.attention_mask)
        with tf.name_scope("spans"):
            spans, valid = self._candidate_spans(start_logits, end_logits, windows, top_k, max_answer_len)
            char_starts, char_ends = self._character_spans(spans, windows, tokens, batch)
        with tf.name_scope("merging"):
            answers = answers_lib.merge_answers(
                contexts=context,
                example=windows.example,
                char_starts=char_starts,
                char_ends=char_ends,
                scores=spans.scores,
                valid=valid,
                null_scores=spans.null_scores,
                top_k=top_k,
                handle_impossible_answer=handle_impossible_answer,
            )
            per_example = tf.math.unsorted_segment_sum(tf.ones_like(windows.example, tf.int32), windows.example, batch)
            return answers._replace(windows=per_example)

    def _candidate_spans(self, start_logits, end_logits, windows, top_k, max_answer_len):
        """Each window's best spans, as many as the pipeline takes from it for its example's ``top_k``; with
        [W, k] bool, True where a span is valid and within that number."""
        quota = tf.gather(answers_lib.candidates_per_window(top_k, self.options.align_to_words), windows.example)
        spans = self.span_extractor(
            start_logits,
            end_logits,
            windows.context_mask,
            windows.attention_mask,
            tf.gather(max_answer_len, windows.example),
            tf.reduce_max(tf.concat([quota, [0]], axis=0)),
        )
        within_quota = tf.range(tf.shape(spans.scores)[1])[tf.newaxis, :] < quota[:, tf.newaxis]
        return spans, spans.valid & within_quota

    def _character_spans(self, spans, windows, tokens, batch) -> tuple[tf.Tensor, tf.Tensor]:
        """[W, k] int64 character start and end (exclusive) in the original context of each token span."""
        token_index = tf.gather(windows.context_token, tf.maximum(spans.starts, 0), batch_dims=1)
        token_end_index = tf.gather(windows.context_token, tf.maximum(spans.ends, 0), batch_dims=1)
        if self.options.align_to_words:
            starts_source, ends_source = tokens.word_starts, tokens.word_ends
        else:
            starts_source, ends_source = tokens.starts, tokens.ends
        # The contexts are the texts from row ``batch`` on (indexed so, not sliced: a ragged slice is a dozen ops).
        context_row = windows.example + tf.cast(batch, tf.int64)
        row_start = tf.gather(starts_source.row_starts(), context_row)[:, tf.newaxis]
        last = tf.maximum(tf.size(starts_source.values, out_type=tf.int64) - 1, 0)
        char_starts = tf.gather(starts_source.values, tf.clip_by_value(row_start + token_index, 0, last))
        char_ends = tf.gather(ends_source.values, tf.clip_by_value(row_start + token_end_index, 0, last))
        return tf.cast(char_starts, tf.int64), tf.cast(char_ends, tf.int64)

    def token_spans(self, input_ids: tf.Tensor, attention_mask: tf.Tensor) -> dict[str, tf.Tensor]:
        """Best answer span of pre-tokenized windows ``[CLS] question [SEP] context [SEP] 0...``.

        Context positions are those between the first and the second [SEP] (with attention 1). Returns
        ``start`` and ``end`` [B] int64 token positions (end inclusive; -1 when the window has no context)
        and ``score`` [B] float32, as the pipeline's ``decode_spans`` with the model's ``max_answer_len``.
        """
        input_ids, attention_mask = inputs_lib.checked_windows(
            self.options,
            input_ids,
            attention_mask,
            vocab_size=len(self.tokenizer.vocabulary),
            max_positions=self.max_positions,
        )
        sep_seen = tf.cumsum(tf.cast(input_ids == self.sep_id, tf.int32), axis=1, exclusive=True)
        context_mask = (sep_seen == 1) & (input_ids != self.sep_id) & (attention_mask != 0)
        start_logits, end_logits = self.logits(input_ids, attention_mask)
        spans = self.span_extractor(
            start_logits,
            end_logits,
            context_mask,
            attention_mask,
            tf.fill(tf.shape(input_ids)[:1], self.options.max_answer_len),
            1,
        )
        return {"start": spans.starts[:, 0], "end": spans.ends[:, 0], "score": spans.scores[:, 0]}

    def call(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Keras entry point: ``{"question", "context"}`` (optionally ``top_k``, ...) to [B, K] answers."""
        result = self.answer(
            inputs["question"],
            inputs["context"],
            inputs.get("top_k"),
            inputs.get("max_answer_len"),
            inputs.get("handle_impossible_answer"),
        )
        return result._asdict()

    # ------------------------------------------------------------------ serving
    def signatures(self) -> dict[str, Any]:
        """The serving signatures of ``tf_qa.signatures.SIGNATURES``, as concrete functions for
        ``tf.saved_model.save``."""

        @tf.function(input_signature=_input_specs(TOP_K_SIGNATURE))
        def answer_top_k(question, context, top_k, max_answer_len, handle_impossible_answer):
            return self.answer(question, context, top_k, max_answer_len, handle_impossible_answer)._asdict()

        # serving_default calls answer_top_k's graph with the export's defaults rather than tracing its own copy
        # of the pipeline: half the graph to save, load and optimize.
        @tf.function(input_signature=_input_specs(SERVING_DEFAULT))
        def serving_default(question, context):
            batch = tf.shape(question)[:1]
            result = answer_top_k(
                question,
                context,
                tf.ones(batch, tf.int32),
                tf.fill(batch, self.options.max_answer_len),
                tf.fill(batch, self.options.handle_impossible_answer),
            )
            return {name: value if name == "windows" else value[:, 0] for name, value in result.items()}

        @tf.function(input_signature=_input_specs(TOKEN_SPANS_SIGNATURE))
        def token_spans(input_ids, attention_mask):
            return self.token_spans(input_ids, attention_mask)

        return {
            SERVING_DEFAULT: serving_default.get_concrete_function(),
            TOP_K_SIGNATURE: answer_top_k.get_concrete_function(),
            TOKEN_SPANS_SIGNATURE: token_spans.get_concrete_function(),
        }

    def attach_vocabulary(self, vocab_file) -> None:
        """Tracks the vocab file as a SavedModel asset (it lands in ``assets/``) for people and tools."""
        self.vocabulary_asset = tf.saved_model.Asset(str(vocab_file))

    def save_for_serving(self, path: str, rewrite_options: rewriter_config_pb2.RewriterConfig | None = None) -> None:
        """Writes a SavedModel with the serving signatures to ``path``, and ``serve`` for Keras.

        ``serve`` takes one dict ``{"question", "context"}`` and returns ``serving_default``'s outputs: the
        endpoint ``keras.layers.TFSMLayer(path)`` calls by default (a signature takes keyword arguments only).

        ``rewrite_options``: Grappler's options for the functions the serving graph calls. A session optimizes its
        graph with its own options, but a function that graph calls with the options recorded in the call (its
        ``config_proto``); they are set here, as the functions are traced.
        """
        # Without the Keras layers' own call traces (what tf_keras's Model.save(save_traces=False) sets; that method
        # wants a built functional model): nothing loads the export as Keras layers, and tracing them took most of
        # the save's time.
        with _function_calls_rewritten_with(rewrite_options), keras_option_scope(save_traces=False):
            signatures = self.signatures()
            top_1 = signatures[SERVING_DEFAULT]
            text = tf.TensorSpec([None], tf.string)

            @tf.function(input_signature=[{"question": text, "context": text}])
            def serve(inputs):
                return top_1(question=inputs["question"], context=inputs["context"])

            self.serve = serve
            tf.saved_model.save(self, path, signatures=signatures)


@contextlib.contextmanager
def _function_calls_rewritten_with(rewrite_options: rewriter_config_pb2.RewriterConfig | None):
    """Function calls traced inside carry ``rewrite_options`` in their ``config_proto`` (this thread's eager
    function-call options, restored after)."""
    if rewrite_options is None:
        yield
        return
    from tensorflow.python.eager import context

    eager = context.context()
    before = eager.function_call_options
    config = config_pb2.ConfigProto.FromString(before.config_proto_serialized)
    config.graph_options.rewrite_options.MergeFrom(rewrite_options)
    eager.function_call_options = context.FunctionCallOptions(before.executor_type, config)
    try:
        yield
    finally:
        eager.function_call_options = before
