"""The model repository's layout, as TF Serving reads it: one home for its folders and file names (no TensorFlow).

A model folder (``export/NAME``, TF Serving's ``--model_base_path``) holds numeric version folders; a version
folder holds a SavedModel (``saved_model.pb``, ``variables/``, ``assets/``) and ``assets.extra/`` with the
warmup requests TF Serving replays (``tf_serving_warmup_requests``) and tf-qa's export record
(``tf_qa_export.json``). Export writes it, validate, serve, evaluate and batch read it, all through here.

Example:

>>> import pathlib, tempfile
>>> base = pathlib.Path(tempfile.mkdtemp())
>>> (base / "3").mkdir(); (base / "3" / SAVED_MODEL_FILE).touch()
>>> version_folders(base), next_version(base), warmup_file(base / "3").relative_to(base).as_posix()
([3], 4, '3/assets.extra/tf_serving_warmup_requests')
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SAVED_MODEL_FILE = "saved_model.pb"
#: The folder of a version's extra files, beside the SavedModel.
ASSETS_EXTRA = "assets.extra"
#: The file name TF Serving looks for in ``assets.extra`` (``--enable_model_warmup``).
WARMUP_FILE = "tf_serving_warmup_requests"
#: tf-qa's record of an export (its source, options, versions) in ``assets.extra``.
EXPORT_RECORD_FILE = "tf_qa_export.json"


def warmup_file(version_dir: str | os.PathLike) -> Path:
    return Path(version_dir) / ASSETS_EXTRA / WARMUP_FILE


def export_record_file(version_dir: str | os.PathLike) -> Path:
    return Path(version_dir) / ASSETS_EXTRA / EXPORT_RECORD_FILE


def read_export_record(version_dir: str | os.PathLike) -> dict | None:
    """The version's export record (None when it has none: not a tf-qa export); ValueError when it is not JSON."""
    path = export_record_file(version_dir)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{EXPORT_RECORD_FILE} is not JSON: {error}") from None


def version_folders(base_path: str | os.PathLike) -> list[int]:
    """Numeric version folders that hold a complete SavedModel, oldest first."""
    if not os.path.isdir(base_path):
        return []
    return sorted(
        int(name)
        for name in os.listdir(base_path)
        if name.isdigit() and os.path.isfile(os.path.join(base_path, name, SAVED_MODEL_FILE))
    )


def next_version(base_path: str | os.PathLike) -> int:
    """The version an export writes by default: one past every numeric folder, complete or not."""
    base = Path(base_path)
    versions = [int(p.name) for p in base.iterdir() if p.name.isdigit()] if base.is_dir() else []
    return max(versions, default=0) + 1


def resolve_version_dir(path: str | os.PathLike) -> tuple[str, str | None]:
    """A version folder for ``path``: itself when it holds a SavedModel, else its newest version folder.

    Returns the folder and a note saying which version was taken (None when ``path`` was one); raises
    ``FileNotFoundError`` naming what is there when neither holds a SavedModel.
    """
    path = os.fspath(path)
    if os.path.isfile(os.path.join(path, SAVED_MODEL_FILE)):
        return path, None
    versions = version_folders(path)
    if versions:
        newest = versions[-1]
        note = f"{path} is a model folder; using its newest version, {newest} (of {', '.join(map(str, versions))})"
        return os.path.join(path, str(newest)), note
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path} is a file, not a SavedModel folder")
    raise FileNotFoundError(
        f"no SavedModel in {path}: it holds no saved_model.pb and no numeric version folder with one"
    )
