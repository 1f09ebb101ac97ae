"""Fine-tuned weights stored as 4-bit differences from the pretrained weights they started from.

Fine-tuning moves each weight a little (for the demo model, by about 2% of the weights' own spread), so a matrix
whose pretrained counterpart is at hand (tf_qa.minilm, sha256-checked) is stored as its difference from it,
rounded per row to 15 levels: 4 bits a weight, two to a byte, and one float32 scale a row. Every other tensor
(biases, layer norms, a new head) is stored whole, in float16. The stored tensors are plain arrays, written and
read with safetensors; ``decode(encode(trained, base), base)`` is what the model runs, so scores are measured on
it (scripts/train_demo_model.py).

Example:

>>> import numpy as np
>>> base = {"w": np.ones((2, 4), np.float32)}
>>> trained = {"w": base["w"] + [[0.07, -0.07, 0.0, 0.01]] * 2, "b": np.zeros(4, np.float32)}
>>> stored = encode(trained, base)
>>> sorted(stored), stored["w" + DELTA].dtype.name, stored["w" + DELTA].shape
(['b', 'w.delta_int4', 'w.delta_scale'], 'uint8', (2, 2))
>>> bool(np.abs(decode(stored, base)["w"] - trained["w"]).max() <= 0.07 / 7 / 2 + 1e-7)
True
"""

from __future__ import annotations

import numpy as np

#: Suffixes of a matrix's two stored parts: its packed 4-bit differences and its scale a row.
DELTA = ".delta_int4"
SCALE = ".delta_scale"
#: Differences are rounded to -7..7 times the row's scale, stored as 1..15 (0 is never written).
LEVELS = 7
_OFFSET = 8


def encode(trained: dict[str, np.ndarray], base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The tensors to store for ``trained``: 4-bit differences where ``base`` has a same-shaped matrix with an even
    number of columns, float16 otherwise."""
    stored = {}
    for name, array in trained.items():
        reference = base.get(name)
        if reference is None or array.ndim != 2 or reference.shape != array.shape or array.shape[1] % 2:
            stored[name] = np.asarray(array, np.float16)
            continue
        difference = np.asarray(array, np.float32) - reference
        scale = np.abs(difference).max(axis=1, keepdims=True) / LEVELS
        scale[scale == 0] = 1.0
        levels = (np.clip(np.rint(difference / scale), -LEVELS, LEVELS) + _OFFSET).astype(np.uint8)
        stored[name + DELTA] = levels[:, 0::2] | (levels[:, 1::2] << 4)
        stored[name + SCALE] = scale.astype(np.float32)
    return stored


def decode(stored: dict[str, np.ndarray], base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The float32 tensors ``encode`` stored; ValueError naming a matrix whose base is missing or of another shape,
    or whose scale is missing."""
    tensors = {}
    for name, array in stored.items():
        if name.endswith(SCALE):
            continue
        if not name.endswith(DELTA):
            tensors[name] = np.asarray(array, np.float32)
            continue
        name = name.removesuffix(DELTA)
        rows, half = array.shape
        reference = base.get(name)
        if reference is None or reference.shape != (rows, 2 * half):
            found = "missing" if reference is None else f"of shape {list(reference.shape)}"
            raise ValueError(f"{name} is stored as a difference of shape [{rows}, {2 * half}]; its base is {found}")
        if name + SCALE not in stored:
            raise ValueError(f"{name} is stored as a difference without its scale ({name + SCALE})")
        levels = np.empty((rows, 2 * half), np.int8)
        levels[:, 0::2], levels[:, 1::2] = array & 15, array >> 4
        tensors[name] = reference + (levels - _OFFSET) * stored[name + SCALE]
    return tensors
