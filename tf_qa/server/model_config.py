"""TF Serving's model config file (``--model_config_file``, a text ``ModelServerConfig``) as ``tf-qa serve`` reads it.

Each ``model_config_list.config`` becomes a ``ServedModel``: the name requests use, the base path, which versions
to hold (``model_version_policy``: ``latest`` N, the default 1; ``all``; ``specific`` versions), the
``version_labels`` and the ``logging_config``. A file ``tf-qa serve`` cannot serve as written is refused with the
file and the problem named, as TF Serving refuses it at startup.

Example:

>>> models = read_model_config("serving/models.config")
>>> models[0].name, models[0].policy, models[0].labels
('distilbert-squad', VersionPolicy(kind='latest', count=2, versions=()), {'stable': 1})
"""

from __future__ import annotations

import dataclasses
import os

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tf_qa.saved_model.layout import version_folders


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """Which version folders to hold: the newest ``count`` (``latest``), ``all``, or ``specific`` ``versions``."""

    kind: str = "latest"
    count: int = 1
    versions: tuple[int, ...] = ()

    def choose(self, available: list[int]) -> list[int]:
        """The versions to hold out of ``available`` (ascending)."""
        if self.kind == "all":
            return list(available)
        if self.kind == "specific":
            return [v for v in available if v in self.versions]
        return available[-self.count :]


@dataclasses.dataclass(frozen=True)
class ServedModel:
    """One model of the config: what the repository serving it needs."""

    name: str
    base_path: str
    policy: VersionPolicy = VersionPolicy()
    labels: dict[str, int] = dataclasses.field(default_factory=dict)
    logging_config: object | None = None  # tensorflow.serving.LoggingConfig, when the config has one


def _policy(config) -> VersionPolicy:
    policy = config.model_version_policy
    kind = policy.WhichOneof("policy_choice") or "latest"
    if kind == "latest":
        return VersionPolicy("latest", policy.latest.num_versions or 1)
    if kind == "specific":
        if not policy.specific.versions:
            raise ValueError(f"model {config.name!r}: a specific version policy needs versions")
        return VersionPolicy("specific", versions=tuple(sorted(policy.specific.versions)))
    return VersionPolicy(kind)


def _served_model(config) -> ServedModel:
    if not config.name:
        raise ValueError("a model config has no name")
    if not config.base_path:
        raise ValueError(f"model {config.name!r} has no base_path")
    if config.model_platform not in ("", "tensorflow"):
        raise ValueError(f"model {config.name!r}: platform {config.model_platform!r}; tf-qa serves 'tensorflow'")
    logging_config = config.logging_config if config.HasField("logging_config") else None
    return ServedModel(config.name, config.base_path, _policy(config), dict(config.version_labels), logging_config)


def read_model_config(path: str | os.PathLike) -> list[ServedModel]:
    """The models of a ``ModelServerConfig`` text file; ValueError naming the file and the problem."""
    try:
        with open(path, encoding="utf-8") as handle:
            config = text_format.Parse(handle.read(), model_server_config_pb2.ModelServerConfig())
        if config.WhichOneof("config") != "model_config_list":
            raise ValueError("it has no model_config_list (custom_model_config is not served)")
        models = [_served_model(model) for model in config.model_config_list.config]
    except (OSError, UnicodeDecodeError, text_format.ParseError, ValueError) as error:
        raise ValueError(f"model config {path}: {error}") from None
    names = [m.name for m in models]
    if not models or len(set(names)) != len(names):
        raise ValueError(f"model config {path}: {'no models' if not models else 'a model name twice'}: {names}")
    return models


def unavailable_labels(model: ServedModel) -> dict[str, int]:
    """The labels that point at a version the policy does not hold on disk now (TF Serving refuses those)."""
    held = set(model.policy.choose(version_folders(model.base_path)))
    return {label: version for label, version in model.labels.items() if version not in held}
