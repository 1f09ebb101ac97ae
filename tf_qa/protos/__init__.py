"""TF Serving's API, the part tf-qa's clients use, from the ``.proto`` files in this folder (no TensorFlow).

The ``.proto`` files keep TF Serving's and TensorFlow's packages, names and field numbers, so these messages are
the same bytes on the wire; clients in other languages compile the same files. ``serving_apis.binpb`` is their
compiled descriptor set (``python -m tf_qa.protos`` writes it again; a test checks that it is current). The
messages live in a pool of their own, so they never clash with TensorFlow's in a process that has both.

Example:

>>> request = PredictRequest()
>>> request.model_spec.name = "qa"
>>> PredictRequest.FromString(request.SerializeToString()).model_spec.name
'qa'
>>> PredictionServiceStub.methods
('Predict', 'GetModelMetadata')
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PROTO_ROOT = Path(__file__).resolve().parent
DESCRIPTOR_SET = PROTO_ROOT / "serving_apis.binpb"

_POOL = descriptor_pool.DescriptorPool()
for _file in descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes()).file:
    _POOL.Add(_file)


def _message(full_name: str):
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(full_name))


TensorProto = _message("tensorflow.TensorProto")
SignatureDef = _message("tensorflow.SignatureDef")
PredictRequest = _message("tensorflow.serving.PredictRequest")
PredictResponse = _message("tensorflow.serving.PredictResponse")
GetModelMetadataRequest = _message("tensorflow.serving.GetModelMetadataRequest")
GetModelMetadataResponse = _message("tensorflow.serving.GetModelMetadataResponse")
SignatureDefMap = _message("tensorflow.serving.SignatureDefMap")
GetModelStatusRequest = _message("tensorflow.serving.GetModelStatusRequest")
GetModelStatusResponse = _message("tensorflow.serving.GetModelStatusResponse")
ModelVersionStatus = _message("tensorflow.serving.ModelVersionStatus")
DataType = _POOL.FindEnumTypeByName("tensorflow.DataType")


class _Stub:
    """A gRPC stub of one service of the pool: a callable per method, for sync and asyncio channels alike."""

    service: str
    methods: tuple[str, ...]

    def __init__(self, channel):
        service = _POOL.FindServiceByName(self.service)
        for name in self.methods:
            method = service.methods_by_name[name]
            request = message_factory.GetMessageClass(method.input_type)
            response = message_factory.GetMessageClass(method.output_type)
            call = channel.unary_unary(
                f"/{service.full_name}/{name}",
                request_serializer=request.SerializeToString,
                response_deserializer=response.FromString,
            )
            setattr(self, name, call)


class PredictionServiceStub(_Stub):
    service = "tensorflow.serving.PredictionService"
    methods = ("Predict", "GetModelMetadata")


class ModelServiceStub(_Stub):
    service = "tensorflow.serving.ModelService"
    methods = ("GetModelStatus",)


def proto_files() -> list[str]:
    """The ``.proto`` files, relative to this folder (the import root), sorted."""
    return sorted(str(path.relative_to(PROTO_ROOT)) for path in PROTO_ROOT.rglob("*.proto"))


def compile_descriptor_set() -> bytes:
    """Compiles the ``.proto`` files with grpcio-tools' protoc (a development dependency) into a descriptor set.

    protoc runs in a process of its own: its C++ protobuf and TensorFlow's do not share one process.
    """
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "set.binpb"
        command = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{_well_known_types()}",
            "--include_imports",
            f"--descriptor_set_out={out}",
            *proto_files(),
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"protoc failed: {done.stderr.strip()}")
        return out.read_bytes()


def _well_known_types() -> Path:
    """google/protobuf/*.proto, as grpcio-tools ships them."""
    import importlib.util

    return Path(importlib.util.find_spec("grpc_tools").submodule_search_locations[0]) / "_proto"
