"""DistilBERT QA checkpoints made without a model hub: the trained demo model, and seeded random ones for tests.

Both are written as a hub download is laid out (``config.json``, the weights, the fast tokenizer with the bundled
uncased vocab), so ``QuestionAnsweringModel.from_pretrained(path)`` and ``transformers.pipeline(..., model=path)``
load them as they would load a downloaded checkpoint.

- ``make_trained_demo_checkpoint``: all-MiniLM-L6-v2 fine-tuned on SQuAD (tf_qa/data/minilm_squad/MODEL_CARD.md):
  the repository's weights, stored as differences from the pinned encoder package (tf_qa.minilm), on it.
- ``make_random_checkpoint``: random weights, meaningless answers, any size: for tests that need size variety.

Example:

>>> path = make_trained_demo_checkpoint("/tmp/minilm-squad")  # doctest: +SKIP
>>> QuestionAnsweringModel.from_pretrained(path)              # doctest: +SKIP
>>> path = make_random_checkpoint("/tmp/tiny-qa", seed=0)     # doctest: +SKIP
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

#: The uncased WordPiece vocab bundled with tf-qa (see tf_qa/data/README.md).
BUNDLED_VOCAB = resources.files("tf_qa") / "data" / "bert-base-uncased-vocab.txt"

#: The trained demo model's weights (tf_qa.weight_deltas), its record and its model card.
TRAINED_DEMO = resources.files("tf_qa") / "data" / "minilm_squad"
#: Articles of SQuAD v1.1 dev part 1 the trained demo model never saw: its held-out EM/F1 is measured on them.
HELD_OUT_TITLES = ("Normans", "Computational_complexity_theory", "Black_Death", "Geology")

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


def trained_demo_weights() -> dict:
    """The trained demo model as ``DistilBertForQuestionAnswering`` state-dict arrays (float32): the repository's
    weights (tf_qa.weight_deltas: differences from the pinned encoder, and the QA head) on the pinned encoder.

    Raises:
        WeightsUnavailable: the encoder package or the repository's trained weights are missing (the message says
            which, and how to install it).
    """
    from safetensors.numpy import load_file

    from tf_qa import minilm, weight_deltas

    weights = TRAINED_DEMO / "weights.safetensors"
    if not weights.is_file():
        raise minilm.WeightsUnavailable(
            f"the trained demo model's weights are not installed ({weights}): they ship with a source checkout"
            " of tf-qa (pip install -e '.[full]'), not with the client package"
        )
    encoder = minilm.distilbert_encoder()
    with resources.as_file(weights) as path:
        tensors = weight_deltas.decode(load_file(str(path)), encoder)
    # Frozen in training (the recipe's default), the word embeddings are the package's own.
    tensors.setdefault(minilm.WORD_EMBEDDINGS, encoder[minilm.WORD_EMBEDDINGS])
    return tensors


def make_trained_demo_checkpoint(output_dir: str | os.PathLike, *, framework: str = "tf") -> str:
    """Writes the trained demo model: TensorFlow weights (``framework="tf"``, what the export and the TF pipeline
    read), or PyTorch's (``"pt"``, for PyTorch and ONNX Runtime rows of the benchmark). See
    ``trained_demo_weights`` for the errors."""
    from safetensors.numpy import save_file
    from transformers import DistilBertConfig, DistilBertTokenizerFast

    from tf_qa import minilm

    tensors = trained_demo_weights()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    config = DistilBertConfig(vocab_size=tensors[minilm.WORD_EMBEDDINGS].shape[0], **minilm.DISTILBERT_SIZE)
    config.architectures = ["DistilBertForQuestionAnswering"]
    if framework == "pt":
        save_file(tensors, str(output_dir / "model.safetensors"), metadata={"format": "pt"})
        config.save_pretrained(output_dir)
    else:
        tf_model_from_state_dict(config, tensors).save_pretrained(output_dir)
    with resources.as_file(BUNDLED_VOCAB) as bundled:
        DistilBertTokenizerFast(str(bundled)).save_pretrained(output_dir)
    return str(output_dir)


def tf_model_from_state_dict(config, tensors: dict, model_class=None):
    """A TF transformers model (``TFDistilBertForQuestionAnswering`` by default) with PyTorch-named weights.

    transformers 4.57 cannot read a PyTorch-format safetensors file into a TF model with safetensors 0.8 (its
    ``safe_open`` is no longer iterable), so the arrays are handed over as a dict; every weight must be used.
    """
    from transformers import TFDistilBertForQuestionAnswering
    from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

    model = (model_class or TFDistilBertForQuestionAnswering)(config)
    model, info = load_pytorch_state_dict_in_tf2_model(model, tensors, output_loading_info=True)
    unused = info["missing_keys"] + info["unexpected_keys"] + info["mismatched_keys"]
    if unused:
        raise ValueError(f"weights that do not fit {type(model).__name__}: {unused[:5]}")
    return model
