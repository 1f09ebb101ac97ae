"""TF Serving config messages that the tensorflow-serving-api wheel does not ship.

``ModelServerConfig`` comes from the wheel. ``BatchingParameters`` (servables/tensorflow/
session_bundle_config.proto) and ``MonitoringConfig`` (config/monitoring_config.proto) are server-side protos
absent from it, so they are declared here with the same package, names, types and field numbers, which is all
text-format parsing looks at.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

_FIELD = descriptor_pb2.FieldDescriptorProto


def _build():
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    proto = descriptor_pb2.FileDescriptorProto(
        name="tf_qa_test_serving_configs.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )

    def message(name, fields):
        msg = proto.message_type.add(name=name)
        for number, (field_name, kind, type_name, label) in enumerate(fields, 1):
            msg.field.add(name=field_name, number=number, type=kind, type_name=type_name or None, label=label)

    optional, repeated = _FIELD.LABEL_OPTIONAL, _FIELD.LABEL_REPEATED
    int64_value = (_FIELD.TYPE_MESSAGE, ".google.protobuf.Int64Value")
    message(
        "BatchingParameters",
        [
            ("max_batch_size", *int64_value, optional),
            ("batch_timeout_micros", *int64_value, optional),
            ("max_enqueued_batches", *int64_value, optional),
            ("num_batch_threads", *int64_value, optional),
            ("thread_pool_name", _FIELD.TYPE_MESSAGE, ".google.protobuf.StringValue", optional),
            ("allowed_batch_sizes", _FIELD.TYPE_INT64, None, repeated),
            ("pad_variable_length_inputs", _FIELD.TYPE_BOOL, None, optional),
        ],
    )
    message(
        "PrometheusConfig",
        [
            ("enable", _FIELD.TYPE_BOOL, None, optional),
            ("path", _FIELD.TYPE_STRING, None, optional),
        ],
    )
    message(
        "MonitoringConfig",
        [
            ("prometheus_config", _FIELD.TYPE_MESSAGE, ".tensorflow.serving.PrometheusConfig", optional),
        ],
    )
    pool.Add(proto)
    get = lambda name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))  # noqa: E731
    return get("BatchingParameters"), get("MonitoringConfig")


BatchingParameters, MonitoringConfig = _build()
