"""The signatures' contract (tf_qa/signatures.py): the export states what it says, and every Answerer (in-process,
the C++ runtime, gRPC) gives the same answers for the same questions and per-question settings."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.saved_model import loader_impl

from tf_qa import errors, signatures
from tf_qa.signatures import SIGNATURES, answer_top_k_inputs


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"top_k": [1, 2, 3]}, "3 settings for 2 questions"),
        ({"max_answer_len": [15]}, "1 settings for 2 questions"),
        ({"handle_impossible_answer": [[True, False]]}, "1 settings for 2 questions"),
    ],
)
def test_per_question_settings_must_match_the_questions(settings, message):
    with pytest.raises(ValueError, match=message):
        answer_top_k_inputs(["a?", "b?"], ["A.", "B."], **settings)


def test_one_setting_is_every_questions_and_the_dtypes_are_the_contracts():
    inputs = answer_top_k_inputs(["a?", "b?"], ["A.", "B."], top_k=2, handle_impossible_answer=[True, False])
    assert inputs["top_k"].tolist() == [2, 2] and inputs["handle_impossible_answer"].tolist() == [True, False]
    numpy_names = {"string": "object", "int32": "int32", "bool": "bool"}
    contract = SIGNATURES["answer_top_k"].inputs
    assert {name: array.dtype.name for name, array in inputs.items()} == {
        name: numpy_names[spec.dtype] for name, spec in contract.items()
    }


def test_the_export_states_exactly_the_contract(saved_model_dir):
    saved_model = loader_impl.parse_saved_model(saved_model_dir)
    (meta_graph,) = [m for m in saved_model.meta_graphs if "serve" in m.meta_info_def.tags]

    def stated(tensors):
        return {
            name: signatures.TensorSpec(
                tf.as_dtype(info.dtype).name, tuple(None if d.size == -1 else d.size for d in info.tensor_shape.dim)
            )
            for name, info in tensors.items()
        }

    exported = {k: v for k, v in meta_graph.signature_def.items() if not k.startswith("__")}
    assert set(exported) == set(SIGNATURES)
    for name, signature in exported.items():
        assert stated(signature.inputs) == SIGNATURES[name].inputs, name
        assert stated(signature.outputs) == SIGNATURES[name].outputs, name


@pytest.fixture(scope="module")
def answerers(saved_model_dir, tiny_server):
    from tf_qa.client import QAClient
    from tf_qa.saved_model.answerer import NativeAnswerer, SavedModelAnswerer

    made = {
        "in-process": SavedModelAnswerer(saved_model_dir),
        "native": NativeAnswerer(saved_model_dir),
        "grpc": QAClient(f"127.0.0.1:{tiny_server.port}", "tiny-qa", timeout=60),
    }
    yield made
    for answerer in made.values():
        answerer.close()


QUESTIONS = ["Where does Ann live?", "Who wrote it?", "What is it?"]
CONTEXTS = ["Ann lives in Paris with Bob.", "Ada wrote it in 1843, in London.", "It is a small red box."]
SETTINGS = {"top_k": [1, 3, 2], "max_answer_len": [15, 2, 30], "handle_impossible_answer": [False, True, False]}


@pytest.mark.parametrize("kind", ["in-process", "native", "grpc"])
def test_every_answerer_answers_per_question_settings_alike(answerers, kind):
    expected = answerers["in-process"].answer_batch(QUESTIONS, CONTEXTS, **SETTINGS)
    assert isinstance(expected[0], dict) and len(expected[1]) <= 3 and len(expected[2]) <= 2
    for theirs, ours in zip(answerers[kind].answer_batch(QUESTIONS, CONTEXTS, **SETTINGS), expected):
        theirs, ours = theirs if isinstance(theirs, list) else [theirs], ours if isinstance(ours, list) else [ours]
        assert [(a["answer"], a["start"], a["end"]) for a in theirs] == [
            (a["answer"], a["start"], a["end"]) for a in ours
        ]
        assert np.allclose([a["score"] for a in theirs], [a["score"] for a in ours], atol=1e-5)


@pytest.mark.parametrize("kind", ["in-process", "native", "grpc"])
def test_every_answerer_refuses_a_bad_question_as_invalid_request_naming_its_row(answerers, kind):
    with pytest.raises(errors.InvalidRequest, match=r"question is empty.*batch index\] \[1\]") as refused:
        answerers[kind].answer_batch(["Who?", ""], ["Ann did.", "Bob did."])
    assert refused.value.code == errors.StatusCode.INVALID_ARGUMENT


def test_a_request_of_the_contract_is_tf_servings_message():
    from tensorflow_serving.apis import predict_pb2

    request = signatures.predict_request(
        "answer_top_k", answer_top_k_inputs(["Who?"], ["Ann did."]), "qa", version_label="stable"
    )
    theirs = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    assert theirs.model_spec.version_label == "stable" and set(theirs.inputs) == set(SIGNATURES["answer_top_k"].inputs)
    with pytest.raises(ValueError, match="not both"):
        signatures.predict_request("answer_top_k", {}, "qa", version=1, version_label="stable")
