"""tf-qa's own TF Serving messages are TensorFlow's on the wire: every request the client makes serializes to the
same bytes as with tensorflow-serving-api and ``tf.make_tensor_proto``, and real responses parse the same."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import descriptor_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

from tf_qa import protos
from tf_qa.client import _RequestBuilder
from tf_qa.tensors import fill_tensor_proto, make_ndarray, make_tensor_proto

QUESTIONS = ["What is the capital of France?", "Où est café 中文 🥲?", "a\x00b"]
CONTEXTS = ["Paris is the capital of France.", "Le café est à Paris, 中文 🥲.", "x\x00y z"]


def test_the_descriptor_set_is_compiled_from_the_proto_files():
    checked_in = descriptor_pb2.FileDescriptorSet.FromString(protos.DESCRIPTOR_SET.read_bytes())
    compiled = descriptor_pb2.FileDescriptorSet.FromString(protos.compile_descriptor_set())
    assert checked_in == compiled, "run python -m tf_qa.protos"


@pytest.mark.parametrize(
    "array",
    [
        np.array([b"a", b"\xff\x00", "中".encode()], dtype=object),
        np.array([[b"x"]], dtype=object),
        np.zeros([0], dtype=object),
        np.array([3], np.int32),
        np.array([1, 2, 3], np.int32),
        np.array([[101, 2054], [0, 0]], np.int32),
        np.zeros([0, 4], np.int32),
        np.array([True]),
        np.array([True, False, True]),
        np.array([0.5], np.float32),
        np.array([0.5, -1.25], np.float32),
        np.array([7, -9], np.int64),
        np.array([2**40], np.int64),
    ],
    ids=lambda array: f"{array.dtype}{list(array.shape)}",
)
def test_tensors_are_tensorflows(array):
    ours = make_tensor_proto(array)
    theirs = tf.make_tensor_proto(array)
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)
    # As tf-qa serve writes its responses: into TensorFlow's own TensorProto class, in place.
    filled = type(theirs)()
    fill_tensor_proto(filled, array)
    assert filled == theirs
    for proto in (ours, tf.make_tensor_proto(array)):
        decoded = make_ndarray(proto)
        assert decoded.dtype == array.dtype and decoded.tolist() == tf.make_ndarray(theirs).tolist()


def _theirs_answer_request(model, questions, contexts, top_k, max_answer_len, handle, version):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    request.model_spec.signature_name = "answer_top_k"
    n = len(questions)
    inputs = {
        "question": np.array([q.encode() for q in questions], dtype=object),
        "context": np.array([c.encode() for c in contexts], dtype=object),
        "top_k": np.full([n], top_k, np.int32),
        "max_answer_len": np.full([n], max_answer_len, np.int32),
        "handle_impossible_answer": np.full([n], handle, bool),
    }
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


@pytest.mark.parametrize("size", [1, 3])
@pytest.mark.parametrize(("top_k", "handle", "version"), [(1, False, None), (5, True, 7)])
def test_every_request_is_the_same_bytes(size, top_k, handle, version):
    builder = _RequestBuilder("qa", version, None)
    questions, contexts = QUESTIONS[:size], CONTEXTS[:size]
    ours, _ = builder.answer_request(
        questions, contexts, top_k=top_k, max_answer_len=15, handle_impossible_answer=handle
    )
    theirs = _theirs_answer_request("qa", questions, contexts, top_k, 15, handle, version)
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)

    ids = [[101, 2054, 102, 3000, 102], [101, 2054, 102, 0, 0]]
    mask = [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    theirs = predict_pb2.PredictRequest()
    theirs.model_spec.name = "qa"
    if version is not None:
        theirs.model_spec.version.value = version
    theirs.model_spec.signature_name = "token_spans"
    theirs.inputs["input_ids"].CopyFrom(tf.make_tensor_proto(np.array(ids, np.int32)))
    theirs.inputs["attention_mask"].CopyFrom(tf.make_tensor_proto(np.array(mask, np.int32)))
    ours = builder.spans_request(ids, mask)
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)

    theirs = get_model_metadata_pb2.GetModelMetadataRequest()
    theirs.model_spec.name = "qa"
    if version is not None:
        theirs.model_spec.version.value = version
    theirs.metadata_field.append("signature_def")
    assert builder.metadata_request().SerializeToString() == theirs.SerializeToString()

    theirs = get_model_status_pb2.GetModelStatusRequest()
    theirs.model_spec.name = "qa"
    if version is not None:
        theirs.model_spec.version.value = version
    assert builder.status_request().SerializeToString() == theirs.SerializeToString()


def test_version_labels_are_the_same_bytes():
    theirs = get_model_status_pb2.GetModelStatusRequest()
    theirs.model_spec.name = "qa"
    theirs.model_spec.version_label = "stable"
    assert _RequestBuilder("qa", None, "stable").status_request().SerializeToString() == theirs.SerializeToString()


@pytest.fixture(scope="module")
def server(tiny_server):
    return f"127.0.0.1:{tiny_server.port}"


def _raw_call(target, method, request) -> bytes:
    """The response of ``method`` as the bytes the server sent."""
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(method, request_serializer=lambda message: message.SerializeToString())
        return call(request, timeout=60)


def test_real_responses_parse_the_same_with_both(server):
    builder = _RequestBuilder("tiny-qa", None, None)
    calls = [
        (
            "/tensorflow.serving.PredictionService/Predict",
            builder.answer_request(QUESTIONS, CONTEXTS, top_k=3, max_answer_len=15, handle_impossible_answer=True)[0],
            predict_pb2.PredictResponse,
            protos.PredictResponse,
        ),
        (
            "/tensorflow.serving.PredictionService/Predict",
            builder.spans_request([[101, 2054, 102, 3000, 102]], [[1, 1, 1, 1, 1]]),
            predict_pb2.PredictResponse,
            protos.PredictResponse,
        ),
        (
            "/tensorflow.serving.PredictionService/GetModelMetadata",
            builder.metadata_request(),
            get_model_metadata_pb2.GetModelMetadataResponse,
            protos.GetModelMetadataResponse,
        ),
        (
            "/tensorflow.serving.ModelService/GetModelStatus",
            builder.status_request(),
            get_model_status_pb2.GetModelStatusResponse,
            protos.GetModelStatusResponse,
        ),
    ]
    for method, request, their_class, our_class in calls:
        raw = _raw_call(server, method, request)
        theirs, ours = their_class.FromString(raw), our_class.FromString(raw)
        assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True), method
        if method.endswith("/Predict"):
            assert set(ours.outputs) == set(theirs.outputs)
            for name in ours.outputs:
                assert make_ndarray(ours.outputs[name]).tolist() == tf.make_ndarray(theirs.outputs[name]).tolist()
    metadata = _RequestBuilder.metadata(
        protos.GetModelMetadataResponse.FromString(_raw_call(server, calls[2][0], calls[2][1]))
    )
    assert {"serving_default", "answer_top_k", "token_spans"} <= set(metadata["signatures"])
