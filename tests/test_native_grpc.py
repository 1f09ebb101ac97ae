"""The C++ gRPC front end (tf_qa/server/native_grpc.py): TF Serving's Predict answered from C++, the model in the
same process. scripts/test.sh installs Debian's gRPC build kit and builds it beside the suite; where that cannot be
done the tests skip saying why."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from conftest import debian_setup_log

from tf_qa import protos
from tf_qa.client import QAClient
from tf_qa.errors import graph_error_message
from tf_qa.saved_model.native import NativeError, NativeUnavailable
from tf_qa.saved_model.session import load_session, run_predict_request
from tf_qa.saved_model.validate import output_difference
from tf_qa.saved_model.warmup import warmup_requests
from tf_qa.server import native_grpc
from tf_qa.server.native_grpc import NativeGrpcServer
from tf_qa.signatures import SERVING_DEFAULT, predict_request, serving_default_inputs
from tf_qa.tensors import make_ndarray

MODEL = "tiny-qa"


@pytest.fixture(scope="module")
def server(saved_model_dir):
    log = debian_setup_log()
    try:
        native_grpc.front_end_binary()
    except NativeUnavailable as error:
        pytest.skip(f"{error} (scripts/setup-debian.sh: {log})")
    with NativeGrpcServer(saved_model_dir, MODEL) as running:
        yield running


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.target) as channel:
        yield protos.PredictionServiceStub(channel)


def test_every_signature_equals_the_python_session(stub, saved_model_dir):
    session, signatures = load_session(saved_model_dir)
    try:
        for request in warmup_requests(MODEL):
            python = run_predict_request(session, signatures, request)
            response = stub.Predict(protos.PredictRequest.FromString(request.SerializeToString()))
            ours = {key: make_ndarray(proto) for key, proto in response.outputs.items()}
            name = request.model_spec.signature_name
            assert output_difference(python, ours) <= 1e-5, name
            assert (response.model_spec.name, response.model_spec.version.value) == (MODEL, 1)
            assert response.model_spec.signature_name == name
    finally:
        session.close()


def test_the_client_answers_through_it(server):
    context = "The Eiffel Tower is in Paris, the capital of France."
    with QAClient(server.target, MODEL) as client:
        answer = client.answer("Where is the Eiffel Tower?", context)
        assert answer["answer"] == context[answer["start"] : answer["end"]] and answer["answer"]


def test_output_filter_keeps_the_outputs_named(stub):
    request = predict_request(SERVING_DEFAULT, serving_default_inputs(["Who?"], ["Ada wrote it."]), MODEL)
    request.output_filter.append("answer")
    assert list(stub.Predict(request).outputs) == ["answer"]
    request.output_filter.append("nope")
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "no output nope" in caught.value.details()


def test_a_wrong_output_filter_is_refused_before_the_request_runs(stub):
    # No inputs at all: run, the request would fail on them; the filter is checked first.
    request = predict_request(SERVING_DEFAULT, {}, MODEL)
    request.output_filter.append("nope")
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "output_filter: no output nope"


@pytest.mark.parametrize(
    "model,version,signature,code,message",
    [
        ("qa", None, SERVING_DEFAULT, grpc.StatusCode.NOT_FOUND, "no model qa; this server serves tiny-qa"),
        (MODEL, 2, SERVING_DEFAULT, grpc.StatusCode.NOT_FOUND, "no version 2 of tiny-qa"),
        (MODEL, None, "nope", grpc.StatusCode.INVALID_ARGUMENT, "no signature nope"),
    ],
)
def test_wrong_requests_are_refused(stub, model, version, signature, code, message):
    version_spec = {"version": version} if version else {}
    inputs = serving_default_inputs(["Who?"], ["Ada wrote it."])
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(predict_request(signature, inputs, model, **version_spec))
    assert caught.value.code() == code and caught.value.details() == message


def test_a_bad_row_is_invalid_argument_naming_it_and_the_server_goes_on(stub):
    inputs = {"question": np.array([b"Who?", b""], dtype=object), "context": np.array([b"Ada.", b"Ada."], dtype=object)}
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(predict_request(SERVING_DEFAULT, inputs, MODEL))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert graph_error_message(caught.value.details()) == (
        "[question is empty or whitespace-only (no tokens) at batch index] [1]"
    )
    response = stub.Predict(predict_request(SERVING_DEFAULT, {k: v[:1] for k, v in inputs.items()}, MODEL))
    assert make_ndarray(response.outputs["answer"]).shape == (1,)


def test_a_folder_without_a_model_is_refused_at_start(server, tmp_path):
    with pytest.raises(NativeError, match="did not start: .*did not load the model") as caught:
        NativeGrpcServer(tmp_path / "1", MODEL)
    assert caught.value.code.name == "FAILED_PRECONDITION"


PREDICT = "/tensorflow.serving.PredictionService/Predict"


@pytest.fixture(scope="module")
def raw_predict(server):
    """Predict on bytes: the front end reads PredictRequest's wire format itself."""
    with grpc.insecure_channel(server.target) as channel:
        yield channel.unary_unary(PREDICT)


@pytest.mark.parametrize("garbage", [b"\x0a\x05ab", b"\xff\xff\xff", b"\x0b", b"\x12\x80"])
def test_bytes_that_are_not_a_predict_request_are_invalid_argument(raw_predict, garbage):
    with pytest.raises(grpc.RpcError) as caught:
        raw_predict(garbage)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "the request is not a PredictRequest"


def test_unknown_fields_are_skipped_and_a_repeated_input_keeps_its_last_value(raw_predict):
    request = predict_request(SERVING_DEFAULT, serving_default_inputs(["Who?"], ["Ada wrote it."]), MODEL)
    first = predict_request(SERVING_DEFAULT, serving_default_inputs(["Where?"], ["Ada wrote it."]), MODEL)
    unknown = b"\x48\x07" + b"\x51" + bytes(8) + b"\x5d" + bytes(4)  # fields 9 (varint), 10 (64-bit), 11 (32-bit)
    # Parsed field by field, the later "question" entry replaces the earlier one, as protobuf's parser does.
    answered = protos.PredictResponse.FromString(
        raw_predict(unknown + first.SerializeToString() + request.SerializeToString())
    )
    expected = protos.PredictResponse.FromString(raw_predict(request.SerializeToString()))
    assert make_ndarray(answered.outputs["answer"]).tolist() == make_ndarray(expected.outputs["answer"]).tolist()
    assert answered.model_spec == expected.model_spec


def test_without_pkg_config_it_names_the_packages(monkeypatch):
    which = native_grpc.shutil.which
    monkeypatch.setattr(native_grpc.shutil, "which", lambda name: None if name == "pkg-config" else which(name))
    with pytest.raises(NativeUnavailable, match=r"needs libgrpc\+\+-dev pkg-config .*; missing: pkg-config$"):
        native_grpc.front_end_binary()


def test_without_grpc_it_names_the_packages(monkeypatch, tmp_path):
    if native_grpc.shutil.which("pkg-config") is None:
        pytest.skip("no pkg-config here")
    monkeypatch.setenv("PKG_CONFIG_LIBDIR", str(tmp_path))  # a search path without grpc++.pc
    monkeypatch.delenv("PKG_CONFIG_PATH", raising=False)
    with pytest.raises(NativeUnavailable, match=r"needs libgrpc\+\+-dev .*; missing: .*grpc\+\+.*not found"):
        native_grpc.front_end_binary()
