"""The platform config: how TF Serving loads and runs a model (``--platform_config_file``).

``serving/platform_config.pbtxt`` (a text ``PlatformConfigMap``) is the one home of tf-qa's serving options: the
session's ``ConfigProto``, server-side batching and model warmup. tensorflow_model_server reads it with
``--platform_config_file``; ``tf-qa serve``, ``tf-qa validate``, the exporter's self-check and the native check
read the same file, so all of them run the model under the same session options.

The tensorflow-serving-api wheel ships ``PlatformConfigMap`` but not the messages inside it
(``SavedModelBundleSourceAdapterConfig``, ``SessionBundleConfig``, ``BatchingParameters``, from
``tensorflow_serving/servables/tensorflow/``), so they are declared here with TF Serving's package, names, types
and field numbers, which is all parsing looks at.

Example:

>>> config = read_platform_config(DEFAULT_PLATFORM_CONFIG)
>>> config.enable_model_warmup, config.batching_parameters.max_batch_size.value
(True, 16)
>>> from tensorflow.core.protobuf import rewriter_config_pb2
>>> config.session_config.graph_options.rewrite_options.function_optimization == rewriter_config_pb2.RewriterConfig.OFF
True
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2
from tensorflow.core.protobuf import config_pb2
from tensorflow_serving.config import platform_config_pb2

from tf_qa.defaults import DEFAULT_PLATFORM_CONFIG

_ADAPTER = "tensorflow.serving.SavedModelBundleSourceAdapterConfig"
_FIELD = descriptor_pb2.FieldDescriptorProto
_BOOL, _STRING, _INT32, _INT64 = _FIELD.TYPE_BOOL, _FIELD.TYPE_STRING, _FIELD.TYPE_INT32, _FIELD.TYPE_INT64

# (name, number, type or message name, repeated): the fields of TF Serving's session_bundle_config.proto that
# carry options for a SavedModel on CPU (in-graph batching, TFLite and fixed input tensors left out).
_MESSAGES = {
    "BatchingParameters": [
        ("max_batch_size", 1, ".google.protobuf.Int64Value", False),
        ("batch_timeout_micros", 2, ".google.protobuf.Int64Value", False),
        ("max_enqueued_batches", 3, ".google.protobuf.Int64Value", False),
        ("num_batch_threads", 4, ".google.protobuf.Int64Value", False),
        ("thread_pool_name", 5, ".google.protobuf.StringValue", False),
        ("allowed_batch_sizes", 6, _INT64, True),
        ("pad_variable_length_inputs", 7, _BOOL, False),
        ("enable_large_batch_splitting", 8, ".google.protobuf.BoolValue", False),
        ("max_execution_batch_size", 9, ".google.protobuf.Int64Value", False),
    ],
    "ModelWarmupOptions": [
        ("num_request_iterations", 1, ".google.protobuf.Int32Value", False),
        ("num_model_warmup_threads", 2, ".google.protobuf.Int32Value", False),
        ("model_name", 3, _STRING, False),
        ("model_version", 4, _INT64, False),
        ("enable_all_batch_sizes_warmup", 5, _BOOL, False),
    ],
    "SessionBundleConfig": [
        ("session_target", 1, _STRING, False),
        ("session_config", 2, ".tensorflow.ConfigProto", False),
        ("batching_parameters", 3, ".tensorflow.serving.BatchingParameters", False),
        ("session_run_load_threadpool_index", 4, ".google.protobuf.Int32Value", False),
        ("saved_model_tags", 6, _STRING, True),
        ("enable_model_warmup", 779, _BOOL, False),
        ("model_warmup_options", 780, ".tensorflow.serving.ModelWarmupOptions", False),
        ("enable_session_metadata", 781, _BOOL, False),
        ("remove_unused_fields_from_bundle_metagraph", 782, _BOOL, False),
        ("enable_per_model_batching_params", 789, _BOOL, False),
        ("mixed_precision", 791, _STRING, False),
    ],
    "SavedModelBundleSourceAdapterConfig": [
        ("legacy_config", 1000, ".tensorflow.serving.SessionBundleConfig", False),
    ],
    # monitoring_config.proto (--monitoring_config_file), which the wheel lacks as well.
    "PrometheusConfig": [("enable", 1, _BOOL, False), ("path", 2, _STRING, False)],
    "MonitoringConfig": [("prometheus_config", 1, ".tensorflow.serving.PrometheusConfig", False)],
    # ssl_config.proto (--ssl_config_file): the PEM texts themselves, and whether clients must present a certificate.
    "SSLConfig": [
        ("server_key", 1, _STRING, False),
        ("server_cert", 2, _STRING, False),
        ("custom_ca", 3, _STRING, False),
        ("client_verify", 4, _BOOL, False),
    ],
}


@functools.cache
def _message_classes() -> dict:
    """The messages above, added once to the default pool (where ConfigProto and PlatformConfigMap live)."""
    pool = descriptor_pool.Default()
    try:
        pool.FindMessageTypeByName(_ADAPTER)
    except KeyError:
        pool.Add(_file_descriptor())
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
        for name in _MESSAGES
    }


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="tf_qa/saved_model/session_bundle_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=[wrappers_pb2.DESCRIPTOR.name, config_pb2.DESCRIPTOR.name],
    )
    for name, fields in _MESSAGES.items():
        message = proto.message_type.add(name=name)
        for field_name, number, kind, repeated in fields:
            field = message.field.add(name=field_name, number=number)
            field.label = _FIELD.LABEL_REPEATED if repeated else _FIELD.LABEL_OPTIONAL
            if isinstance(kind, str):
                field.type, field.type_name = _FIELD.TYPE_MESSAGE, kind
            else:
                field.type = kind
    return proto


def batching_parameters_class():
    """TF Serving's ``BatchingParameters`` message class (the ``--batching_parameters_file`` format)."""
    return _message_classes()["BatchingParameters"]


def monitoring_config_class():
    """TF Serving's ``MonitoringConfig`` message class (the ``--monitoring_config_file`` format)."""
    return _message_classes()["MonitoringConfig"]


def ssl_config_class():
    """TF Serving's ``SSLConfig`` message class (the ``--ssl_config_file`` format)."""
    return _message_classes()["SSLConfig"]


def read_platform_config(path: str | os.PathLike = DEFAULT_PLATFORM_CONFIG):
    """The ``SessionBundleConfig`` of a platform config file's ``tensorflow`` platform.

    Raises ValueError naming the file and the problem when it does not parse or has no such platform.
    """
    classes = _message_classes()
    try:
        text = Path(path).read_text(encoding="utf-8")
        config_map = text_format.Parse(
            text, platform_config_pb2.PlatformConfigMap(), descriptor_pool=descriptor_pool.Default()
        )
    except (OSError, UnicodeDecodeError, text_format.ParseError) as error:
        raise ValueError(f"platform config {path}: {error}") from None
    if "tensorflow" not in config_map.platform_configs:
        raise ValueError(f"platform config {path}: no 'tensorflow' platform")
    adapter = classes["SavedModelBundleSourceAdapterConfig"]()
    if not config_map.platform_configs["tensorflow"].source_adapter_config.Unpack(adapter):
        raise ValueError(f"platform config {path}: the 'tensorflow' platform's config is not a {_ADAPTER}")
    return adapter.legacy_config
