"""TF Serving's REST API for ``tf-qa serve``: predict (row and columnar formats), model status, metadata.

    GET  /v1/models/NAME[/versions/N]             -> {"model_version_status": [...]}
    GET  /v1/models/NAME[/versions/N]/metadata    -> {"model_spec": ..., "metadata": {"signature_def": ...}}
    POST /v1/models/NAME[/versions/N]:predict     {"signature_name": ..., "instances": [...]} -> {"predictions": [...]}
                                                  {"signature_name": ..., "inputs": {...}}    -> {"outputs": {...}}

Strings travel as JSON text, or as ``{"b64": "..."}`` for bytes that are not UTF-8. Every request gets an
answer: errors are ``{"error": "..."}`` with 400 (bad request: malformed, nested or mistyped JSON, a body that
is not UTF-8), 404 (no such model or version), 411 (no Content-Length), 413 (body over the limit), 429 (too
many requests in flight), 503 (too many connections), 504 (the request's time ran out) or 500.

The handler holds a ``Predictor``, as TF Serving's REST handler does: limits, deadlines and errors are the
gRPC service's own.

Example:

>>> rest = RestServer(predictor, "127.0.0.1", 8501).start()                      # doctest: +SKIP
>>> # curl -d '{"instances": [{"question": "Who?", "context": "Ada wrote it."}]}' \\
>>> #      localhost:8501/v1/models/NAME:predict
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import ssl
import threading
import time
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from grpc import StatusCode
from prometheus_client import CONTENT_TYPE_LATEST

from tf_qa.errors import InvalidRequest, TFQAError
from tf_qa.server.options import DEFAULT_REST_TIMEOUT
from tf_qa.server.predictor import Predictor
from tf_qa.signatures import SERVING_DEFAULT
from tf_qa.tracing import checked_traceparent

log = logging.getLogger("tf_qa.server.rest")

_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?(?P<rest>/metadata|:predict)?$"
)
#: The HTTP status of a TFQAError's status code (anything else is 500).
HTTP_STATUS = {
    StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
    StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    StatusCode.RESOURCE_EXHAUSTED: HTTPStatus.TOO_MANY_REQUESTS,
    StatusCode.DEADLINE_EXCEEDED: HTTPStatus.GATEWAY_TIMEOUT,
    StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
}


class HttpError(TFQAError):
    """A refusal with an HTTP status of its own, finer than its status code's (411, 413)."""

    def __init__(self, status: HTTPStatus, message: str, code: StatusCode = StatusCode.INVALID_ARGUMENT):
        super().__init__(message, code=code)
        self.status = status


def http_status(error: TFQAError) -> HTTPStatus:
    return (
        error.status if isinstance(error, HttpError) else HTTP_STATUS.get(error.code, HTTPStatus.INTERNAL_SERVER_ERROR)
    )


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message)


def _decode_strings(value):
    if isinstance(value, list):
        return [_decode_strings(v) for v in value]
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        return base64.b64decode(value["b64"], validate=True)
    if isinstance(value, str):
        return value.encode("utf-8", errors="surrogatepass")
    raise _invalid(f"expected a string, got {json.dumps(value)[:50]}")


def to_array(value, dtype) -> np.ndarray:
    """A JSON value as a numpy array of the signature's dtype; INVALID_ARGUMENT unless it is exactly that.

    Numbers are not converted between kinds (``1.5`` is not an int, ``true`` is not a number) and nested lists
    must be rectangular.
    """
    dtype = tf.dtypes.as_dtype(dtype)
    try:
        if dtype == tf.string:
            array = np.array(_decode_strings(value), dtype=object)
            if not all(isinstance(item, bytes) for item in array.flat):
                raise ValueError("the nested lists are not rectangular")
            return array
        array = np.array(value)
        kinds = "b" if dtype.is_bool else "iu" if dtype.is_integer else "iuf"
        if array.size and array.dtype.kind not in kinds:  # an empty list has no kind: numpy calls it float
            raise ValueError(f"expected {dtype.name} values, got {json.dumps(value)[:50]}")
        if dtype.is_integer and array.size and not (dtype.min <= array.min() and array.max() <= dtype.max):
            raise ValueError(f"a value is outside the range of {dtype.name}")
        return array.astype(dtype.as_numpy_dtype)
    except (TypeError, ValueError, OverflowError) as error:
        raise _invalid(f"cannot read a {dtype.name} tensor: {error}") from None


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


def _row_inputs(instances, signature) -> dict[str, np.ndarray]:
    """The ``instances`` (row) format as input arrays."""
    names = sorted(signature.inputs)
    if not isinstance(instances, list) or not instances:
        raise _invalid("'instances' must be a non-empty list")
    if len(names) == 1 and not all(isinstance(i, dict) and names[0] in i for i in instances):
        instances = [{names[0]: i} for i in instances]
    if not all(isinstance(i, dict) for i in instances):
        raise _invalid("every instance must be an object of named inputs")
    inputs = {}
    for key in set().union(*instances):
        if key not in signature.inputs:
            inputs[key] = np.zeros([0])  # reported as unexpected by the predictor
        elif not all(key in i for i in instances):
            raise _invalid(f"input {key!r} is missing from some instances")
        else:
            inputs[key] = to_array([i[key] for i in instances], signature.inputs[key].dtype)
    return inputs


def _column_inputs(columns, signature) -> dict[str, np.ndarray]:
    """The ``inputs`` (columnar) format as input arrays."""
    names = sorted(signature.inputs)
    if not isinstance(columns, dict):
        if len(names) != 1:
            raise _invalid("'inputs' must be an object of named inputs")
        columns = {names[0]: columns}
    return {
        k: (to_array(v, signature.inputs[k].dtype) if k in signature.inputs else np.zeros([0]))
        for k, v in columns.items()
    }


def predict(
    predictor: Predictor, loaded, body: dict, deadline: float | None = None, traceparent: str | None = None
) -> dict:
    """Runs a predict body (row or columnar format) and returns the response body."""
    signature_name = body.get("signature_name") or SERVING_DEFAULT
    if not isinstance(signature_name, str):
        raise _invalid("'signature_name' must be a string")
    signature = loaded.signatures.get(signature_name)
    if signature is None:
        raise _invalid(f'Serving signature name: "{signature_name}" not found')
    if ("instances" in body) == ("inputs" in body):
        raise _invalid("the body needs exactly one of 'instances' or 'inputs'")
    rows = "instances" in body
    inputs = _row_inputs(body["instances"], signature) if rows else _column_inputs(body["inputs"], signature)
    outputs, values = predictor.predict(loaded, signature_name, inputs, deadline=deadline, traceparent=traceparent)
    if not rows:
        if len(outputs) == 1:
            return {"outputs": to_json(values[0])}
        return {"outputs": {o: to_json(v) for o, v in zip(outputs, values)}}
    if len(outputs) == 1:
        return {"predictions": to_json(values[0])}
    return {"predictions": [{o: to_json(v[row]) for o, v in zip(outputs, values)} for row in range(len(values[0]))]}


def parse_body(raw: bytes) -> dict:
    """A request body as a JSON object; INVALID_ARGUMENT for anything else (never an exception of json's)."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise _invalid(f"body is not UTF-8: {error}") from None
    except json.JSONDecodeError as error:
        raise _invalid(f"body is not JSON: {error}") from None
    except RecursionError:
        raise _invalid("body is nested too deeply") from None
    if not isinstance(body, dict):
        raise _invalid("body must be a JSON object")
    return body


class RestHandler(BaseHTTPRequestHandler):
    """One connection's requests; ``make_handler`` binds the self.predictor. ``timeout`` (seconds) bounds both a
    request's work and a client that stops sending (StreamRequestHandler applies it to the socket)."""

    protocol_version = "HTTP/1.1"
    predictor: Predictor
    timeout: float = DEFAULT_REST_TIMEOUT
    metrics_path: str | None = None  # where Prometheus scrapes (--monitoring-config-file); None: not served

    def log_message(self, *args):  # requests are not logged line by line
        pass

    def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _route(self, method: str) -> None:
        try:
            self._answer(method)
        except TFQAError as error:
            retry_after = getattr(error, "retry_after", None)
            if retry_after is None:
                self._send(http_status(error), {"error": str(error)})
            else:  # Retry-After is whole seconds; the body says it to the millisecond
                seconds = str(max(1, math.ceil(retry_after)))
                body = {"error": str(error), "retry_after_ms": round(retry_after * 1000)}
                self._send(http_status(error), body, {"Retry-After": seconds})
        except (TimeoutError, ConnectionError):
            self.close_connection = True
        except Exception as error:
            log.exception("REST request failed")
            self.close_connection = True
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {error}"})

    def _send_metrics(self) -> None:
        body = self.predictor.metrics.exposition()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer(self, method: str) -> None:
        if method == "GET" and self.metrics_path and self.path.split("?")[0] == self.metrics_path:
            self._send_metrics()
            return
        match = _PATH.match(self.path.split("?")[0])
        if not match or (method == "POST") != (match["rest"] == ":predict") or (match["label"] and not match["rest"]):
            raise HttpError(HTTPStatus.NOT_FOUND, f"no such endpoint: {method} {self.path}", StatusCode.NOT_FOUND)
        name, label = match["name"], match["label"]
        version = int(match["version"]) if match["version"] else None
        if method == "GET" and not match["rest"]:
            self._send(HTTPStatus.OK, self._status(name, version))
        elif method == "GET":
            with self._version(name, version, label) as loaded:
                self._send(HTTPStatus.OK, self._metadata(loaded))
        else:
            deadline = time.monotonic() + self.timeout
            traceparent = checked_traceparent(self.headers.get("traceparent"))
            with self.predictor.serving(name, "REST", traceparent):
                body = self._body()
                with self.predictor.admit(), self._version(name, version, label) as loaded:
                    reply = predict(self.predictor, loaded, body, deadline, traceparent)
            self._send(HTTPStatus.OK, reply)

    @contextmanager
    def _version(self, name: str, version: int | None, label: str | None = None):
        loaded = self.predictor.acquire(name, version, label)
        try:
            yield loaded
        finally:
            loaded.release()

    def _body(self) -> dict:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower() or "Content-Length" not in self.headers:
            self.close_connection = True
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "a predict request needs a Content-Length header")
        try:
            length = int(self.headers["Content-Length"])
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise _invalid(f"Content-Length is not a byte count: {self.headers['Content-Length']!r}")
        if length > self.predictor.max_request_bytes:
            self.close_connection = True  # the body is never read
            raise HttpError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body of {length} bytes is over the limit of {self.predictor.max_request_bytes} bytes "
                "(tf-qa serve --max-request-bytes)",
                StatusCode.RESOURCE_EXHAUSTED,
            )
        return parse_body(self.rfile.read(length))

    def _status(self, name: str, version: int | None) -> dict:
        return {
            "model_version_status": [
                {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
                for v in self.predictor.versions(name, version)
            ]
        }

    def _metadata(self, loaded) -> dict:
        return {
            "model_spec": {"name": loaded.model_name, "version": str(loaded.version)},
            "metadata": {"signature_def": json_format.MessageToDict(self.predictor.signature_map(loaded))},
        }

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")


def make_handler(predictor: Predictor, timeout: float, metrics_path: str | None = None) -> type[RestHandler]:
    """A handler class serving ``predictor``, each request's work and socket reads bounded by ``timeout``, and
    its metrics at ``metrics_path``."""
    attributes = {"predictor": predictor, "timeout": timeout, "metrics_path": metrics_path}
    return type("BoundRestHandler", (RestHandler,), attributes)


class _BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, up to ``max_connections``; one more gets a 503 at once and is closed."""

    daemon_threads = True

    def __init__(self, address, handler, max_connections: int, tls: ssl.SSLContext | None = None):
        super().__init__(address, handler)
        self._connections = threading.BoundedSemaphore(max_connections)
        self.tls = tls

    def process_request(self, request, client_address):
        if not self._connections.acquire(blocking=False):
            if self.tls is not None:  # no plaintext reply on a TLS port
                self.shutdown_request(request)
                return
            body = b'{"error": "the server has too many open connections; retry later"}'
            try:
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                )
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            if self.tls is not None:  # the handshake in the connection's own thread, bounded by the handler's timeout
                request.settimeout(self.RequestHandlerClass.timeout)
                try:
                    request = self.tls.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError) as error:  # e.g. no client certificate under client_verify
                    log.info("REST TLS handshake with %s failed: %s", client_address[0], error)
                    self.shutdown_request(request)
                    return
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()


class RestServer:
    """Serves the REST API on ``host:port`` (0 picks a free port) in a background thread.

    Args:
        predictor: runs the requests (shared with the gRPC service).
        timeout: seconds a request may take, reading its body included (TF Serving's --rest_api_timeout_in_ms).
        metrics_path: the path Prometheus scrapes the predictor's metrics at (None: not served).
        tls: serve HTTPS with this context (``tf_qa.server.ssl_config``); plaintext when None.
    """

    def __init__(
        self,
        predictor: Predictor,
        host: str = "127.0.0.1",
        port: int = 8501,
        timeout: float = DEFAULT_REST_TIMEOUT,
        metrics_path: str | None = None,
        tls: ssl.SSLContext | None = None,
    ):
        # Connections beyond the Predict slots, so that status calls and a 429 still get through.
        handler = make_handler(predictor, timeout, metrics_path)
        self.httpd = _BoundedHTTPServer((host, port), handler, predictor.max_in_flight + 8, tls)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="rest", daemon=True)

    def start(self) -> RestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
