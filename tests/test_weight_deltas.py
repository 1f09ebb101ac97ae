"""Fine-tuned weights as 4-bit differences from their base (tf_qa/weight_deltas.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tf_qa import weight_deltas
from tf_qa.weight_deltas import DELTA, LEVELS, SCALE, decode, encode


def fine_tuned(shape, seed=0, spread=0.01):
    random = np.random.default_rng(seed)
    base = random.normal(0, 0.05, shape).astype(np.float32)
    return base, base + random.normal(0, spread, shape).astype(np.float32)


@pytest.mark.parametrize("shape", [(1, 2), (3, 8), (384, 384), (1536, 384), (512, 384)])
def test_a_matrix_comes_back_within_half_a_level_of_its_row(shape):
    base, trained = fine_tuned(shape)
    stored = encode({"w": trained}, {"w": base})
    assert stored["w" + DELTA].shape == (shape[0], shape[1] // 2) and stored["w" + DELTA].dtype == np.uint8
    error = np.abs(decode(stored, {"w": base})["w"] - trained)
    half_level = np.abs(trained - base).max(axis=1, keepdims=True) / LEVELS / 2
    assert np.all(error <= half_level * (1 + 1e-5) + 1e-7)


def test_every_level_keeps_its_column_and_sign():
    base = np.zeros((1, 2 * LEVELS + 2), np.float32)
    trained = np.arange(-LEVELS, LEVELS + 2, dtype=np.float32).clip(max=LEVELS)[None, :]
    np.testing.assert_array_equal(decode(encode({"w": trained}, {"w": base}), {"w": base})["w"], trained)


def test_an_unchanged_matrix_decodes_to_its_base_exactly():
    base, _ = fine_tuned((4, 6))
    stored = encode({"w": base}, {"w": base})
    np.testing.assert_array_equal(decode(stored, {"w": base})["w"], base)


@pytest.mark.parametrize(
    "name, trained, base",
    [
        ("bias", np.full(4, 0.5, np.float32), {"bias": np.zeros(4, np.float32)}),  # not a matrix
        ("head", np.full((2, 4), 0.5, np.float32), {}),  # no base: a new layer
        ("odd", np.full((2, 3), 0.5, np.float32), {"odd": np.zeros((2, 3), np.float32)}),  # cannot pair columns
        ("other", np.full((2, 4), 0.5, np.float32), {"other": np.zeros((4, 2), np.float32)}),  # base reshaped
    ],
)
def test_what_has_no_same_shaped_base_is_stored_whole_in_float16(name, trained, base):
    stored = encode({name: trained}, base)
    assert list(stored) == [name] and stored[name].dtype == np.float16
    np.testing.assert_array_equal(decode(stored, base)[name], trained)


@pytest.mark.parametrize("base", [{}, {"w": np.zeros((4, 4), np.float32)}], ids=["missing", "other shape"])
def test_a_difference_without_its_base_is_named(base):
    _, trained = fine_tuned((2, 4))
    stored = encode({"w": trained}, {"w": np.zeros((2, 4), np.float32)})
    with pytest.raises(ValueError, match=r"^w is stored as a difference of shape \[2, 4\]; its base is"):
        decode(stored, base)


def test_a_difference_without_its_scale_is_named():
    base, trained = fine_tuned((2, 4))
    stored = encode({"w": trained}, {"w": base})
    del stored["w" + SCALE]
    with pytest.raises(ValueError, match=r"^w is stored as a difference without its scale \(w\.delta_scale\)$"):
        decode(stored, {"w": base})


def test_the_scale_is_stored_once_a_row_in_float32():
    base, trained = fine_tuned((5, 8))
    scale = encode({"w": trained}, {"w": base})["w" + SCALE]
    assert scale.shape == (5, 1) and scale.dtype == np.float32
    assert weight_deltas.decode({"w" + SCALE: scale}, {}) == {}
