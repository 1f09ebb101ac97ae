"""TF Serving's ``MonitoringConfig`` (config/monitoring_config.proto), which the tensorflow-serving-api wheel does
not ship, declared with the same package, names, types and field numbers, which is all text-format parsing looks
at. (The platform config's messages are declared in tf_qa/saved_model/platform_config.py, which tf-qa reads.)
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_FIELD = descriptor_pb2.FieldDescriptorProto


def _build():
    pool = descriptor_pool.DescriptorPool()
    proto = descriptor_pb2.FileDescriptorProto(
        name="tf_qa_test_monitoring_config.proto", package="tensorflow.serving", syntax="proto3"
    )
    prometheus = proto.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=_FIELD.TYPE_BOOL, label=_FIELD.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=_FIELD.TYPE_STRING, label=_FIELD.LABEL_OPTIONAL)
    monitoring = proto.message_type.add(name="MonitoringConfig")
    monitoring.field.add(
        name="prometheus_config",
        number=1,
        type=_FIELD.TYPE_MESSAGE,
        type_name=".tensorflow.serving.PrometheusConfig",
        label=_FIELD.LABEL_OPTIONAL,
    )
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig"))


MonitoringConfig = _build()
