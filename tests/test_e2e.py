"""End to end over gRPC: export, serve, ask through the sync and async clients.

By default the suite exports the seeded test checkpoint and starts tf-qa's own server on a free loopback
port. Set ``TF_QA_TARGET=host:port`` (and ``TF_QA_MODEL_NAME``) to run the same tests against any server
that serves an export of the same checkpoint, e.g. a real tensorflow_model_server.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import SQUAD_V1, squad_pairs
from parity import REQUIRED_AGREEMENT, compare, in_batches
from texts import long_context_cases, non_ascii_cases

from tf_qa import errors
from tf_qa.client import QAClient

MODEL_NAME = os.environ.get("TF_QA_MODEL_NAME", "tiny-qa")


@pytest.fixture(scope="session")
def target(request):
    if os.environ.get("TF_QA_TARGET"):
        return os.environ["TF_QA_TARGET"]
    return f"127.0.0.1:{request.getfixturevalue('tiny_server').port}"


@pytest.fixture(scope="session")
def client(target):
    with QAClient(target, MODEL_NAME, timeout=120) as qa_client:
        yield qa_client


@pytest.mark.parametrize("top_k,handle", [(1, False), (3, True)])
def test_answers_over_grpc_equal_the_pipeline(client, pipe, hf_tokenizer, top_k, handle):
    sets = {"non-ASCII": non_ascii_cases()[:60], "long contexts": long_context_cases(hf_tokenizer)}
    if SQUAD_V1.exists():
        sets["squad-v1.1[:300]"] = squad_pairs(SQUAD_V1, 300)
    answer_fn = in_batches(client.answer_batch, batch_size=16)
    for name, cases in sets.items():
        counts = compare(
            pipe, answer_fn, [q for q, _ in cases], [c for _, c in cases], top_k=top_k, handle_impossible_answer=handle
        )
        print(counts.summary(f"gRPC {name} top_k={top_k} handle_impossible_answer={handle}"))
        assert counts.agreement >= REQUIRED_AGREEMENT, counts.summary(name)


def test_token_spans_over_grpc(client, hf_tokenizer):
    enc = hf_tokenizer(["What is the capital?"], ["Paris is the capital of France."])
    out = client.spans(enc["input_ids"], enc["attention_mask"])
    assert set(out) == {"start", "end", "score"} and out["start"][0] <= out["end"][0]


def test_metadata_describes_signatures(client):
    metadata = client.metadata()
    top_k = metadata["signatures"]["answer_top_k"]
    assert set(top_k["inputs"]) == {"question", "context", "top_k", "max_answer_len", "handle_impossible_answer"}
    assert set(top_k["outputs"]) == {"answer", "score", "start", "end", "windows"}


@pytest.mark.parametrize(
    "question,context,message",
    [
        ("   ", "Paris is nice.", "question is empty"),
        ("Where?", "", "context is empty"),
        (b"caf\xc3", "Paris is nice.", "not valid UTF-8"),
    ],
)
def test_bad_requests_are_invalid_argument(client, question, context, message):
    with pytest.raises(errors.InvalidRequest, match=message):
        client.answer(question, context)


def test_wrong_inputs_are_rejected_as_tf_serving_does(target):
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL_NAME
        request.inputs["question"].CopyFrom(tf.make_tensor_proto(np.array([b"what?"], dtype=object)))
        with pytest.raises(grpc.RpcError) as missing:
            stub.Predict(request, timeout=30)
        assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        request.inputs["context"].CopyFrom(tf.make_tensor_proto(np.array([1.0], np.float32)))
        with pytest.raises(grpc.RpcError) as dtype:
            stub.Predict(request, timeout=30)
        assert dtype.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        request.model_spec.name = "no-such-model"
        with pytest.raises(grpc.RpcError) as unknown:
            stub.Predict(request, timeout=30)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
