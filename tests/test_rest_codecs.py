"""The REST API's JSON codecs: request bodies to tensors of the signature's dtypes, tensors back to JSON."""

from __future__ import annotations

import types

import grpc
import numpy as np
import pytest
import tensorflow as tf

from tf_qa.errors import TFQAError
from tf_qa.server.rest import _column_inputs, _row_inputs, parse_body, to_array, to_json


@pytest.mark.parametrize(
    "value,dtype,expected",
    [
        (["café", "中文"], tf.string, np.array(["café".encode(), "中文".encode()], dtype=object)),
        ([{"b64": "/w=="}], tf.string, np.array([b"\xff"], dtype=object)),
        ([[1, 2], [3, 4]], tf.int32, np.array([[1, 2], [3, 4]], np.int32)),
        ([True, False], tf.bool, np.array([True, False])),
        ([1, 2.5], tf.float32, np.array([1, 2.5], np.float32)),
        ([], tf.int32, np.zeros([0], np.int32)),
    ],
)
def test_to_array_reads_exactly_the_signatures_dtype(value, dtype, expected):
    array = to_array(value, dtype)
    assert array.dtype == expected.dtype and array.tolist() == expected.tolist()


@pytest.mark.parametrize(
    "value,dtype,message",
    [
        ([1.5], tf.int32, "expected int32 values"),
        ([True], tf.int32, "expected int32 values"),
        ([1], tf.bool, "expected bool values"),
        ([2**31], tf.int32, "outside the range of int32"),
        ([["a", "b"], ["c"]], tf.string, "not rectangular"),
        ([1], tf.string, "expected a string, got 1"),
        ([{"b64": "not base64!"}], tf.string, "cannot read a string tensor"),
        ([[1, 2], [3]], tf.int32, "cannot read a int32 tensor"),
    ],
)
def test_to_array_refuses_other_kinds_naming_them(value, dtype, message):
    with pytest.raises(TFQAError) as raised:
        to_array(value, dtype)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT and message in str(raised.value)


@pytest.mark.parametrize(
    "value,expected",
    [
        (np.array([b"caf\xc3\xa9", b"\xff"], dtype=object), ["café", {"b64": "/w=="}]),
        (np.array([[1, 2]], np.int64), [[1, 2]]),
        (np.float32(0.5), 0.5),
        (np.array([True]), [True]),
    ],
)
def test_to_json_gives_text_or_base64(value, expected):
    assert to_json(value) == expected


SIGNATURE = types.SimpleNamespace(
    inputs={"question": tf.TensorSpec([None], tf.string), "top_k": tf.TensorSpec([None], tf.int32)}
)


def test_row_and_column_formats_read_the_same_arrays():
    rows = _row_inputs([{"question": "a", "top_k": 1}, {"question": "b", "top_k": 2}], SIGNATURE)
    columns = _column_inputs({"question": ["a", "b"], "top_k": [1, 2]}, SIGNATURE)
    assert set(rows) == set(columns) == {"question", "top_k"}
    for name in rows:
        assert rows[name].tolist() == columns[name].tolist() and rows[name].dtype == columns[name].dtype


@pytest.mark.parametrize(
    "instances,message",
    [
        ([], "'instances' must be a non-empty list"),
        ({"question": "a"}, "'instances' must be a non-empty list"),
        ([{"question": "a", "top_k": 1}, {"question": "b"}], "input 'top_k' is missing from some instances"),
        (["a"], "every instance must be an object of named inputs"),
    ],
)
def test_bad_row_bodies(instances, message):
    with pytest.raises(TFQAError, match=message):
        _row_inputs(instances, SIGNATURE)


@pytest.mark.parametrize(
    "raw,message",
    [
        (b"\xff", "body is not UTF-8"),
        (b"{", "body is not JSON"),
        (b"[1]", "body must be a JSON object"),
        (b"[" * 100_000, "body is nested too deeply"),
    ],
)
def test_parse_body_refuses_what_is_not_a_json_object(raw, message):
    with pytest.raises(TFQAError, match=message):
        parse_body(raw)
