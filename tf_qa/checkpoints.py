"""Small seeded DistilBERT QA checkpoints for tests, benchmarks and the offline demo.

No model hub is needed: the checkpoint is built from a ``DistilBertConfig`` with the bundled uncased vocab and
written with ``save_pretrained``, so ``QuestionAnsweringModel.from_pretrained(path)`` and
``transformers.pipeline(..., model=path)`` load it exactly as they would load a downloaded one. Its answers are
meaningless; its purpose is to exercise the whole pipeline with real tokenization.

Example:

>>> path = make_random_checkpoint("/tmp/tiny-qa", seed=0)     # doctest: +SKIP
>>> QuestionAnsweringModel.from_pretrained(path)              # doctest: +SKIP
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

#: The uncased WordPiece vocab bundled with tf-qa (see tf_qa/data/README.md).
BUNDLED_VOCAB = resources.files("tf_qa") / "data" / "bert-base-uncased-vocab.txt"

#: A model small enough for fast tests (2 layers, width 64).
TINY = {"dim": 64, "hidden_dim": 128, "n_layers": 2, "n_heads": 2}
#: DistilBertConfig() defaults: the size of distilbert-base-uncased-distilled-squad.
BASE: dict = {}


def make_random_checkpoint(
    output_dir: str | os.PathLike,
    *,
    seed: int = 0,
    size: dict | None = None,
    qa_head_std: float = 0.5,
    vocab_file: str | os.PathLike | None = None,
) -> str:
    """Writes a seeded random-weights ``TFDistilBertForQuestionAnswering`` checkpoint and its fast tokenizer.

    Args:
        output_dir: folder to write (created).
        seed: seeds every weight, so the same seed gives the same checkpoint.
        size: DistilBertConfig overrides; ``TINY`` by default, ``BASE`` for distilbert-base size.
        qa_head_std: standard deviation of the QA head's kernel; a wide spread makes near-ties rare.
        vocab_file: WordPiece vocab; the bundled uncased vocab by default.

    Returns:
        ``output_dir`` as a string.
    """
    import tensorflow as tf
    import tf_keras
    from transformers import DistilBertConfig, DistilBertTokenizerFast, TFDistilBertForQuestionAnswering

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with resources.as_file(BUNDLED_VOCAB) as bundled:
        tokenizer = DistilBertTokenizerFast(str(vocab_file or bundled))
    config = DistilBertConfig(vocab_size=tokenizer.vocab_size, **(TINY if size is None else size))
    tf_keras.utils.set_random_seed(seed)
    model = TFDistilBertForQuestionAnswering(config)
    model(model.dummy_inputs, training=False)
    kernel = model.qa_outputs.kernel
    kernel.assign(tf.random.stateless_normal(kernel.shape, seed=[seed, 1], stddev=qa_head_std))
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return str(output_dir)
