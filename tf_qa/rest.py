"""TF Serving's REST API for ``tf-qa serve``: predict (row and columnar formats), model status, metadata.

    GET  /v1/models/NAME[/versions/N]             -> {"model_version_status": [...]}
    GET  /v1/models/NAME[/versions/N]/metadata    -> {"model_spec": ..., "metadata": {"signature_def": ...}}
    POST /v1/models/NAME[/versions/N]:predict     {"signature_name": ..., "instances": [...]} -> {"predictions": [...]}
                                                  {"signature_name": ..., "inputs": {...}}    -> {"outputs": {...}}

Strings travel as JSON text, or as ``{"b64": "..."}`` for bytes that are not UTF-8. Errors are
``{"error": "..."}`` with 400 (bad request), 404 (no such model or version) or 500.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from tf_qa.defaults import MAX_MESSAGE_BYTES, SERVING_DEFAULT
from tf_qa.server import Predictor, RequestError

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?(?P<rest>/metadata|:predict)?$")
_HTTP_STATUS = {grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST, grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND}


def _decode_strings(value):
    if isinstance(value, list):
        return [_decode_strings(v) for v in value]
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, str):
        return value.encode("utf-8")
    raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"expected a string, got {json.dumps(value)[:50]}")


def to_array(value, dtype) -> np.ndarray:
    """A JSON value as a numpy array of the signature's dtype."""
    dtype = tf.dtypes.as_dtype(dtype)
    try:
        if dtype == tf.string:
            return np.array(_decode_strings(value), dtype=object)
        return np.asarray(value, dtype=dtype.as_numpy_dtype)
    except (TypeError, ValueError) as error:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"cannot read a {dtype.name} tensor: {error}") from None


def to_json(value):
    """A tensor (or one row of it) as JSON: bytes as text, or ``{"b64": ...}`` when not UTF-8."""
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, list):
        return [to_json(item) for item in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, np.generic):
        return value.item()
    return value


def predict(predictor: Predictor, loaded, body: dict) -> dict:
    signature_name = body.get("signature_name") or SERVING_DEFAULT
    signature = loaded.signatures.get(signature_name)
    if signature is None:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"Serving signature name: \"{signature_name}\" not found")
    if ("instances" in body) == ("inputs" in body):
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "the body needs exactly one of 'instances' or 'inputs'")
    names = sorted(signature.inputs)
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "'instances' must be a non-empty list")
        if len(names) == 1 and not all(isinstance(i, dict) and names[0] in i for i in instances):
            instances = [{names[0]: i} for i in instances]
        if not all(isinstance(i, dict) for i in instances):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "every instance must be an object of named inputs")
        keys = set().union(*instances)
        inputs = {}
        for key in keys:
            if key not in signature.inputs:
                inputs[key] = np.zeros([0])  # reported as unexpected by the predictor
                continue
            if not all(key in i for i in instances):
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"input {key!r} is missing from some instances")
            inputs[key] = to_array([i[key] for i in instances], signature.inputs[key].dtype)
    else:
        columns = body["inputs"]
        if not isinstance(columns, dict):
            columns = {names[0]: columns} if len(names) == 1 else None
        if columns is None:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "'inputs' must be an object of named inputs")
        inputs = {k: (to_array(v, signature.inputs[k].dtype) if k in signature.inputs else np.zeros([0]))
                  for k, v in columns.items()}
    outputs, values = predictor.predict(loaded, signature_name, inputs)
    if "instances" in body:
        rows = len(values[0]) if values else 0
        if len(outputs) == 1:
            return {"predictions": to_json(values[0])}
        return {"predictions": [{o: to_json(v[row]) for o, v in zip(outputs, values)} for row in range(rows)]}
    if len(outputs) == 1:
        return {"outputs": to_json(values[0])}
    return {"outputs": {o: to_json(v) for o, v in zip(outputs, values)}}


def make_handler(predictor: Predictor):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # requests are not logged line by line
            pass

        def _send(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _route(self, method: str) -> None:
            match = _PATH.match(self.path.split("?")[0])
            try:
                if not match or (method == "POST") != (match["rest"] == ":predict"):
                    self._send(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {method} {self.path}"})
                    return
                version = int(match["version"]) if match["version"] else None
                if method == "GET" and not match["rest"]:
                    self._status(match["name"], version)
                    return
                loaded = predictor.acquire(match["name"], version)
                try:
                    if match["rest"] == "/metadata":
                        self._send(HTTPStatus.OK, self._metadata(loaded))
                    else:
                        self._send(HTTPStatus.OK, predict(predictor, loaded, self._body()))
                finally:
                    loaded.release()
            except RequestError as error:
                self._send(_HTTP_STATUS.get(error.code, HTTPStatus.INTERNAL_SERVER_ERROR), {"error": str(error)})

        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_MESSAGE_BYTES:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"body of {length} bytes is too large")
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except json.JSONDecodeError as error:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"body is not JSON: {error}") from None
            if not isinstance(body, dict):
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "body must be a JSON object")
            return body

        def _status(self, name: str, version: int | None) -> None:
            if name != predictor.repository.model_name:
                raise RequestError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
            versions = [v for v in predictor.repository.statuses() if version is None or v == version]
            if not versions:
                raise RequestError(grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model {name}")
            self._send(HTTPStatus.OK, {"model_version_status": [
                {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
                for v in versions]})

        def _metadata(self, loaded) -> dict:
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for key, value in loaded.signatures.items():
                signature_map.signature_def[key].CopyFrom(value)
            return {"model_spec": {"name": predictor.repository.model_name, "version": str(loaded.version)},
                    "metadata": {"signature_def": json_format.MessageToDict(signature_map)}}

        def do_GET(self):  # noqa: N802
            self._route("GET")

        def do_POST(self):  # noqa: N802
            self._route("POST")

    return Handler


class RestServer:
    """Serves the REST API on ``host:port`` (0 picks a free port) in a background thread."""

    def __init__(self, predictor: Predictor, host: str = "127.0.0.1", port: int = 8501):
        self.httpd = ThreadingHTTPServer((host, port), make_handler(predictor))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="rest", daemon=True)

    def start(self) -> "RestServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
