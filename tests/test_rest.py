"""TF Serving's REST API on tf-qa serve: row and columnar predict, status, metadata, errors."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

NAME = "tiny-qa"


@pytest.fixture(scope="module")
def rest(tiny_server):
    return f"http://127.0.0.1:{tiny_server.rest_port}"


def _call(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_status_and_metadata(rest):
    status, body = _call(f"{rest}/v1/models/{NAME}")
    assert status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"
    status, body = _call(f"{rest}/v1/models/{NAME}/metadata")
    assert status == 200 and "answer_top_k" in body["metadata"]["signature_def"]["signatureDef"]
    assert _call(f"{rest}/v1/models/other")[0] == 404


def test_row_and_columnar_predict_agree(rest):
    questions = ["What is the capital?", "Who wrote it?"]
    contexts = ["Paris is the capital of France.", "Adam Mickiewicz wrote Pan Tadeusz — café 中文."]
    status, rows = _call(
        f"{rest}/v1/models/{NAME}:predict",
        {"instances": [{"question": q, "context": c} for q, c in zip(questions, contexts)]},
    )
    assert status == 200 and len(rows["predictions"]) == 2
    status, columns = _call(
        f"{rest}/v1/models/{NAME}:predict", {"inputs": {"question": questions, "context": contexts}}
    )
    assert status == 200
    for i, row in enumerate(rows["predictions"]):
        assert row["answer"] == columns["outputs"]["answer"][i]
        assert contexts[i][row["start"] : row["end"]] == row["answer"]
    status, top = _call(
        f"{rest}/v1/models/{NAME}:predict",
        {
            "signature_name": "answer_top_k",
            "instances": [
                {
                    "question": questions[0],
                    "context": contexts[0],
                    "top_k": 2,
                    "max_answer_len": 15,
                    "handle_impossible_answer": False,
                }
            ],
        },
    )
    assert status == 200 and len(top["predictions"][0]["answer"]) == 2


@pytest.mark.parametrize(
    "body,message",
    [
        ({"instances": [{"question": "   ", "context": "Paris."}]}, "question is empty"),
        ({"instances": [{"question": "What?"}]}, "missing"),
        ({"inputs": {"question": ["a?"], "context": [1]}}, "expected a string"),
        ({"instances": [], "inputs": {}}, "exactly one"),
    ],
)
def test_bad_requests_are_400(rest, body, message):
    status, reply = _call(f"{rest}/v1/models/{NAME}:predict", body)
    assert status == 400 and message in reply["error"]
