"""``python -m tf_qa.protos``: compiles the .proto files into ``serving_apis.binpb`` again (needs grpcio-tools)."""

from tf_qa.protos import DESCRIPTOR_SET, compile_descriptor_set

DESCRIPTOR_SET.write_bytes(compile_descriptor_set())
print(f"wrote {DESCRIPTOR_SET}")
