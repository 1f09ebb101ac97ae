"""tf-qa's errors: one root, ``TFQAError``, carrying a message and a status code.

The codes are gRPC's (``grpc.StatusCode``), which are TensorFlow's and TF Serving's ``Status`` codes. The gRPC
server aborts with an error's own code; the REST server maps it to an HTTP status (``tf_qa.server.rest``), the
command line to an exit code (``tf_qa.cli``), each in one table. A client raises the subclass of the code it got.

Example:

>>> error = error_for(StatusCode.NOT_FOUND, "no model 'qa'")
>>> type(error).__name__, error.code.name, isinstance(error, TFQAError)
('ModelNotFound', 'NOT_FOUND', True)
"""

from __future__ import annotations

import grpc
from grpc import StatusCode


class TFQAError(Exception):
    """Root of tf-qa's errors. ``code`` is the status code (each subclass has its own by default), ``target``
    the server or model that refused, where one did."""

    code: StatusCode = StatusCode.UNKNOWN

    def __init__(self, message: str, *, code: StatusCode | None = None, target: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.target = target


class InvalidRequest(TFQAError):
    """INVALID_ARGUMENT: the request is wrong (empty question, bad UTF-8, ...); retrying will not help."""

    code = StatusCode.INVALID_ARGUMENT


class ModelNotFound(TFQAError):
    """NOT_FOUND: no such model, version or label on the server."""

    code = StatusCode.NOT_FOUND


class ServerUnavailable(TFQAError):
    """UNAVAILABLE: the server could not be reached (after the retries)."""

    code = StatusCode.UNAVAILABLE


class DeadlineExceeded(TFQAError):
    """DEADLINE_EXCEEDED: no answer within the call's deadline."""

    code = StatusCode.DEADLINE_EXCEEDED


class ResourceExhausted(TFQAError):
    """RESOURCE_EXHAUSTED: refused at once, before any work: the server is busy (``retry_after``: the seconds it
    asked the client to wait, its ``grpc-retry-pushback-ms``) or a message is over a size limit (no
    ``retry_after``: retrying will not help)."""

    code = StatusCode.RESOURCE_EXHAUSTED
    retry_after: float | None = None


class ServerError(TFQAError):
    """Any other failure reported by the server (INTERNAL, UNKNOWN, ...)."""


class UsageError(TFQAError):
    """INVALID_ARGUMENT in how a command or a server was invoked (a flag, a value, a config file given to it), as
    opposed to a request or data refused later; the command line exits 2 for it, as argparse does."""

    code = StatusCode.INVALID_ARGUMENT


class SetupError(TFQAError):
    """FAILED_PRECONDITION: something this machine or this folder lacks (a file, a package, a compiler)."""

    code = StatusCode.FAILED_PRECONDITION


#: The subclass a status code is raised as.
_BY_CODE = {
    kind.code: kind
    for kind in (InvalidRequest, ModelNotFound, ServerUnavailable, DeadlineExceeded, ResourceExhausted, SetupError)
}


def error_for(code: StatusCode, message: str, *, target: str | None = None) -> TFQAError:
    """The error of ``code``, as the subclass for that code (``ServerError`` for the others)."""
    return _BY_CODE.get(code, ServerError)(message, code=code, target=target)


#: The trailer a server sets on RESOURCE_EXHAUSTED to say when to try again (gRPC's retry pushback), in ms.
PUSHBACK_TRAILER = "grpc-retry-pushback-ms"


def retry_pushback(error: grpc.RpcError) -> float | None:
    """Seconds the server asked to wait before trying again (its ``grpc-retry-pushback-ms``), or None."""
    for key, value in error.trailing_metadata() or ():
        if key == PUSHBACK_TRAILER:
            try:
                return max(0, int(value)) / 1000
            except ValueError:
                return None
    return None


def from_grpc(error: grpc.RpcError, *, target: str, elapsed: float) -> TFQAError:
    """The tf-qa exception for a failed call to ``target`` that took ``elapsed`` seconds."""
    code = error.code()
    details = error.details() or ""
    if code in (StatusCode.UNAVAILABLE, StatusCode.DEADLINE_EXCEEDED):
        message = f"{target}: {code.name} after {elapsed:.1f}s: {details}"
    else:
        message = f"{target}: {code.name}: {details}"
    raised = error_for(code, message, target=target)
    if code == StatusCode.RESOURCE_EXHAUSTED:
        raised.retry_after = retry_pushback(error)
    return raised


def graph_error_message(message: str) -> str:
    """The graph's own assertion message (which names the problem), without TF's node trace around it."""
    marker = "assertion failed: "
    if marker in message:
        message = message[message.index(marker) + len(marker) :]
    return message.split("\n\t [[")[0].strip()
