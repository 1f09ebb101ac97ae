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

from typing import Any

import tensorflow as tf
import tf_keras

from tf_qa.defaults import DEFAULT_MAX_ANSWER_LEN, SERVING_DEFAULT, TOKEN_SPANS_SIGNATURE, TOP_K_SIGNATURE
from tf_qa.graph import answers as answers_lib
from tf_qa.graph import checks, window_groups
from tf_qa.graph import windows as windows_lib
from tf_qa.graph.distilbert import DistilBertSpanLogits, is_supported
from tf_qa.graph.limits import export_flag
from tf_qa.graph.options import ExportOptions
from tf_qa.graph.spans import SpanExtractor
from tf_qa.graph.tokenization import WordPieceTokenizer, invalid_utf8


def run_top_k_signature(signature, questions, contexts, *, top_k: int = 1,
                        max_answer_len: int = DEFAULT_MAX_ANSWER_LEN,
                        handle_impossible_answer: bool = False) -> dict:
    """Calls a loaded SavedModel's ``answer_top_k`` signature with one setting for every example.

    Returns the outputs (``answer``, ``score``, ``start``, ``end``) as [B, K] numpy arrays.
    """
    n = len(questions)
    out = signature(question=tf.constant(questions), context=tf.constant(contexts), top_k=tf.fill([n], top_k),
                    max_answer_len=tf.fill([n], max_answer_len),
                    handle_impossible_answer=tf.fill([n], handle_impossible_answer))
    return {key: value.numpy() for key, value in out.items()}


class QuestionAnsweringModel(tf_keras.Model):
    """Extractive QA from raw text: tokenizer, doc-stride windows, QA model, span extractor, merging.

    Args:
        qa_model: a transformers TF model for question answering taking ``input_ids`` and
            ``attention_mask`` (``TFDistilBertForQuestionAnswering``).
        tokenizer: the in-graph tokenizer built from the checkpoint's tokenizer.
        cls_id, sep_id: ids of [CLS] and [SEP].
        options: what the export fixes (``tf_qa.graph.options.ExportOptions``; ``max_seq_len`` must be set).
    """

    def __init__(self, qa_model: tf_keras.Model, tokenizer: WordPieceTokenizer, *, cls_id: int, sep_id: int,
                 options: ExportOptions, **kwargs):
        super().__init__(**kwargs)
        if options.max_seq_len is None:
            raise ValueError("options.max_seq_len must be set (ExportOptions.with_max_seq_len)")
        self.qa_model = qa_model
        # DistilBERT runs through a layout whose dense layers TF can fuse; other models run as they are.
        distilbert = is_supported(qa_model)
        if options.matmul_dtype != "float32" and not distilbert:
            raise ValueError(f"matmul_dtype={options.matmul_dtype!r} needs a DistilBERT QA model")
        self.span_logits = DistilBertSpanLogits(qa_model, matmul_dtype=options.matmul_dtype) if distilbert else None
        self.options = options
        self.tokenizer = tokenizer
        self.span_extractor = SpanExtractor()
        self.cls_id = cls_id
        self.sep_id = sep_id
        # token_spans takes windows of any length; positions past the model's embeddings do not exist.
        self.max_positions = getattr(qa_model.config, "max_position_embeddings", options.max_seq_len)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, name_or_path: str, *, from_pt: bool = False,
                        options: ExportOptions | None = None) -> QuestionAnsweringModel:
        """Loads a transformers QA checkpoint (hub name or local folder) and its fast tokenizer."""
        from transformers import AutoTokenizer, TFAutoModelForQuestionAnswering

        tokenizer = AutoTokenizer.from_pretrained(name_or_path, use_fast=True)
        qa_model = TFAutoModelForQuestionAnswering.from_pretrained(name_or_path, from_pt=from_pt)
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
        return cls(qa_model, WordPieceTokenizer.from_transformers(tokenizer), cls_id=tokenizer.cls_token_id,
                   sep_id=tokenizer.sep_token_id, options=options)

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
        """``logits`` of many windows, run in groups of similar length (``tf_qa.graph.window_groups``)."""
        if self.options.window_group_size == 0:
            return self.logits(input_ids, attention_mask)
        return window_groups.grouped_logits(self.logits, input_ids, attention_mask, self.options.window_group_size)

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
        question, context, top_k, max_answer_len, handle_impossible_answer = self._checked_inputs(
            question, context, top_k, max_answer_len, handle_impossible_answer)
        batch = tf.shape(question)[0]
        tokens = self.tokenizer(tf.concat([question, context], axis=0))
        question_ids, context_ids = self._checked_token_ids(tokens.token_ids[:batch], tokens.token_ids[batch:])
        windows = windows_lib.make_windows(question_ids, context_ids, max_seq_len=self.options.max_seq_len,
                                           doc_stride=self.options.doc_stride, cls_id=self.cls_id, sep_id=self.sep_id)
        start_logits, end_logits = self.grouped_logits(windows.input_ids, windows.attention_mask)

        quota = tf.gather(answers_lib.candidates_per_window(top_k, self.options.align_to_words), windows.example)
        spans = self.span_extractor(
            start_logits, end_logits, windows.context_mask, windows.attention_mask,
            tf.gather(max_answer_len, windows.example), tf.reduce_max(tf.concat([quota, [0]], axis=0)),
        )
        within_quota = tf.range(tf.shape(spans.scores)[1])[tf.newaxis, :] < quota[:, tf.newaxis]
        char_starts, char_ends = self._character_spans(spans, windows, tokens, context_ids, batch)
        return answers_lib.merge_answers(
            contexts=context,
            example=windows.example,
            char_starts=char_starts,
            char_ends=char_ends,
            scores=spans.scores,
            valid=spans.valid & within_quota,
            null_scores=spans.null_scores,
            top_k=top_k,
            handle_impossible_answer=handle_impossible_answer,
        )

    def _checked_inputs(self, question, context, top_k, max_answer_len, handle_impossible_answer) -> list:
        """The inputs with their defaults, released only after the checks that bound the work on them.

        Cheapest first: shapes, then one value per example (options, byte lengths), then UTF-8 (one pass
        over the bytes); each wave waits for the one before, so no check runs on an input over a limit.
        """
        question = tf.convert_to_tensor(question, tf.string)
        context = tf.convert_to_tensor(context, tf.string)
        batch = tf.shape(question)[0]
        top_k = tf.ones([batch], tf.int32) if top_k is None else tf.cast(top_k, tf.int32)
        if max_answer_len is None:
            max_answer_len = tf.fill([batch], self.options.max_answer_len)
        if handle_impossible_answer is None:
            handle_impossible_answer = tf.fill([batch], self.options.handle_impossible_answer)
        inputs = [question, context, top_k, tf.cast(max_answer_len, tf.int32),
                  tf.cast(handle_impossible_answer, tf.bool)]

        sizes = tf.stack([tf.size(x) for x in inputs[1:]])
        inputs = checks.gate(inputs, [
            checks.check(
                tf.reduce_all(sizes == batch),
                "question, context, top_k, max_answer_len and handle_impossible_answer must all have the same "
                "batch size; got question batch and then the others:", batch, sizes),
            checks.check_at_most(self.options.limits, "max_examples", batch, "examples"),
        ])
        question, context, top_k, max_answer_len, _ = inputs
        # Byte lengths are read off the strings' headers; concatenating the texts first would copy them all.
        text_bytes = sum(tf.reduce_sum(tf.cast(tf.strings.length(texts), tf.int64)) for texts in (question, context))
        max_top_k = self.options.limits.max_top_k
        inputs = checks.gate(inputs, [
            checks.check(tf.reduce_all(top_k >= 1) & tf.reduce_all(top_k <= max_top_k),
                         f"top_k must be between 1 and {max_top_k} (raise the limit with tf-qa export "
                         f"{export_flag('max_top_k')}); got", top_k),
            checks.check(tf.reduce_all(max_answer_len >= 1), "max_answer_len must be at least 1; got",
                         max_answer_len),
            checks.check_at_most(self.options.limits, "max_text_bytes", text_bytes,
                                 "bytes of question and context text"),
        ])
        question, context = inputs[:2]
        bad_question, bad_context = invalid_utf8(question), invalid_utf8(context)
        return checks.gate(inputs, [
            checks.check(~tf.reduce_any(bad_question), "question is not valid UTF-8 at batch index",
                         checks.bad_rows(bad_question)),
            checks.check(~tf.reduce_any(bad_context), "context is not valid UTF-8 at batch index",
                         checks.bad_rows(bad_context)),
        ])

    def _checked_token_ids(self, question_ids: tf.RaggedTensor, context_ids: tf.RaggedTensor) -> list:
        """Question and context token ids, released once each example can make windows within the limits."""
        question_lengths, context_lengths = question_ids.row_lengths(), context_ids.row_lengths()
        empty_question, empty_context = question_lengths == 0, context_lengths == 0
        max_seq_len, doc_stride = self.options.max_seq_len, self.options.doc_stride
        too_long = windows_lib.question_too_long(question_ids, context_ids, max_seq_len=max_seq_len,
                                                 doc_stride=doc_stride)
        windows = windows_lib.windows_per_example(question_lengths, context_lengths, max_seq_len=max_seq_len,
                                                  doc_stride=doc_stride)
        total_windows = tf.reduce_sum(tf.where(too_long, tf.zeros_like(windows), windows))
        return checks.gate([question_ids, context_ids], [
            checks.check(~tf.reduce_any(empty_question),
                         "question is empty or whitespace-only (no tokens) at batch index",
                         checks.bad_rows(empty_question)),
            checks.check(~tf.reduce_any(empty_context),
                         "context is empty or whitespace-only (no tokens) at batch index",
                         checks.bad_rows(empty_context)),
            checks.check(~tf.reduce_any(too_long),
                         f"question is too long: with max_seq_len={max_seq_len} and doc_stride="
                         f"{doc_stride} no window has room for more than doc_stride context tokens; "
                         "question tokens at batch index", checks.bad_rows(too_long),
                         tf.boolean_mask(question_lengths, too_long)),
            checks.check_at_most(self.options.limits, "max_windows", total_windows,
                                 f"windows of up to {max_seq_len} tokens"),
        ])

    def _character_spans(self, spans, windows, tokens, context_ids, batch) -> tuple[tf.Tensor, tf.Tensor]:
        """[W, k] int64 character start and end (exclusive) in the original context of each token span."""
        token_index = tf.gather(windows.context_token, tf.maximum(spans.starts, 0), batch_dims=1)
        token_end_index = tf.gather(windows.context_token, tf.maximum(spans.ends, 0), batch_dims=1)
        row_start = tf.gather(context_ids.row_starts(), windows.example)[:, tf.newaxis]
        if self.options.align_to_words:
            starts_source, ends_source = tokens.word_starts[batch:], tokens.word_ends[batch:]
        else:
            starts_source, ends_source = tokens.starts[batch:], tokens.ends[batch:]
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
        input_ids, attention_mask = self._checked_windows(input_ids, attention_mask)
        sep_seen = tf.cumsum(tf.cast(input_ids == self.sep_id, tf.int32), axis=1, exclusive=True)
        context_mask = (sep_seen == 1) & (input_ids != self.sep_id) & (attention_mask != 0)
        start_logits, end_logits = self.logits(input_ids, attention_mask)
        spans = self.span_extractor(
            start_logits, end_logits, context_mask, attention_mask,
            tf.fill(tf.shape(input_ids)[:1], self.options.max_answer_len), 1,
        )
        return {"start": spans.starts[:, 0], "end": spans.ends[:, 0], "score": spans.scores[:, 0]}

    def _checked_windows(self, input_ids: tf.Tensor, attention_mask: tf.Tensor) -> list:
        """``token_spans``' inputs, released after the shape checks and then the value checks."""
        input_ids = tf.cast(input_ids, tf.int32)
        attention_mask = tf.cast(attention_mask, tf.int32)
        ids_shape, mask_shape = tf.shape(input_ids), tf.shape(attention_mask)
        inputs = checks.gate([input_ids, attention_mask], [
            checks.check(tf.reduce_all(ids_shape == mask_shape),
                         "input_ids and attention_mask must have the same shape; got", ids_shape, mask_shape),
            checks.check_at_most(self.options.limits, "max_windows", ids_shape[0], "windows"),
            checks.check((ids_shape[0] == 0) | (ids_shape[1] >= 1), "input_ids must have at least one position"),
            checks.check(ids_shape[1] <= self.max_positions,
                         tf.strings.format("input_ids has {} positions, more than the model's "
                                           f"max_position_embeddings={self.max_positions} (fixed by the checkpoint)",
                                           [ids_shape[1]])),
        ])
        input_ids, attention_mask = inputs
        vocab_size = len(self.tokenizer.vocabulary)
        return checks.gate(inputs, [
            checks.check(tf.reduce_all((attention_mask == 0) | (attention_mask == 1)), "attention_mask must be 0 or 1"),
            checks.check(tf.reduce_all(input_ids >= 0) & tf.reduce_all(input_ids < vocab_size),
                         f"input_ids must be in [0, {vocab_size})"),
        ])

    def call(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Keras entry point: ``{"question", "context"}`` (optionally ``top_k``, ...) to [B, K] answers."""
        result = self.answer(
            inputs["question"], inputs["context"], inputs.get("top_k"), inputs.get("max_answer_len"),
            inputs.get("handle_impossible_answer"),
        )
        return result._asdict()

    # ------------------------------------------------------------------ serving
    def signatures(self) -> dict[str, Any]:
        """The three serving signatures, as concrete functions for ``tf.saved_model.save``.

        * ``serving_default``: question, context [B] string -> answer [B] string, score [B] float32,
          start, end [B] int64 (top-1, export-time defaults).
        * ``answer_top_k``: question, context [B] string, top_k, max_answer_len [B] int32,
          handle_impossible_answer [B] bool -> answer, score, start, end [B, K] with K = max(top_k).
        * ``token_spans``: input_ids, attention_mask [B, L] int32 -> start, end [B] int64, score [B] float32.
        """
        text = tf.TensorSpec([None], tf.string)

        @tf.function(input_signature=[text, text])
        def serving_default(question, context):
            result = self.answer(question, context)
            return {name: value[:, 0] for name, value in result._asdict().items()}

        @tf.function(input_signature=[text, text, tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int32),
                                      tf.TensorSpec([None], tf.bool)])
        def answer_top_k(question, context, top_k, max_answer_len, handle_impossible_answer):
            return self.answer(question, context, top_k, max_answer_len, handle_impossible_answer)._asdict()

        ids = tf.TensorSpec([None, None], tf.int32)

        @tf.function(input_signature=[ids, ids])
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

    def save_for_serving(self, path: str) -> None:
        """Writes a SavedModel with the serving signatures to ``path``."""
        tf.saved_model.save(self, path, signatures=self.signatures())
