"""tf-qa's exceptions: gRPC status codes become a small hierarchy carrying the server's message."""

from __future__ import annotations

import grpc


class TFQAError(Exception):
    """Base of tf-qa's errors. ``code`` is the gRPC status code, ``target`` the server that answered."""

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None, target: str | None = None):
        super().__init__(message)
        self.code = code
        self.target = target


class InvalidRequest(TFQAError):
    """INVALID_ARGUMENT: the request is wrong (empty question, bad UTF-8, ...); retrying will not help."""


class ModelNotFound(TFQAError):
    """NOT_FOUND: no such model, version or label on the server."""


class ServerUnavailable(TFQAError):
    """UNAVAILABLE: the server could not be reached (after the retries)."""


class DeadlineExceeded(TFQAError):
    """DEADLINE_EXCEEDED: no answer within the call's deadline."""


class ResourceExhausted(TFQAError):
    """RESOURCE_EXHAUSTED: refused at once, before any work: too many requests in flight on the server (retry
    later, or elsewhere) or a message over a size limit. Not retried: only the caller knows which it can fix."""


class ServerError(TFQAError):
    """Any other failure reported by the server."""


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.NOT_FOUND: ModelNotFound,
    grpc.StatusCode.UNAVAILABLE: ServerUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
}


def from_grpc(error: grpc.RpcError, *, target: str, elapsed: float) -> TFQAError:
    """The tf-qa exception for a failed call to ``target`` that took ``elapsed`` seconds."""
    code = error.code()
    details = error.details() or ""
    kind = _BY_CODE.get(code, ServerError)
    if kind in (ServerUnavailable, DeadlineExceeded):
        message = f"{target}: {code.name} after {elapsed:.1f}s: {details}"
    else:
        message = f"{target}: {code.name}: {details}"
    return kind(message, code=code, target=target)


def graph_error_message(message: str) -> str:
    """The graph's own assertion message (which names the problem), without TF's node trace around it."""
    marker = "assertion failed: "
    if marker in message:
        message = message[message.index(marker) + len(marker) :]
    return message.split("\n\t [[")[0].strip()
