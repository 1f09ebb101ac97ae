"""gRPC client for a tf-qa model served by TensorFlow Serving (or ``tf-qa serve``); it needs no TensorFlow.

As easy as the pipeline, as solid as a production gRPC client: one channel per target reused across calls,
a deadline on every call, retries with exponential backoff on UNAVAILABLE only, TLS and per-call metadata
(an auth token), round-robin over several targets (long-lived HTTP/2 connections defeat L4 balancers), and
gRPC errors turned into ``tf_qa.errors`` exceptions that carry the server's message.

Example:

>>> with QAClient("localhost:8500", "distilbert-squad") as client:            # doctest: +SKIP
...     client.answer("Where do I live?", "I live in Paris.")
{'answer': 'Paris', 'score': 0.98, 'start': 10, 'end': 15}

``AsyncQAClient`` has the same methods as coroutines.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from tf_qa import errors, protos, signatures
from tf_qa.defaults import DEFAULT_MAX_ANSWER_LEN, MAX_MESSAGE_BYTES
from tf_qa.signatures import TOKEN_SPANS_SIGNATURE, TOP_K_SIGNATURE
from tf_qa.tensors import make_ndarray
from tf_qa.tracing import checked_traceparent


def _targets(target: str | Sequence[str]) -> list[str]:
    targets = [t.strip() for t in (target.split(",") if isinstance(target, str) else target) if t.strip()]
    if not targets:
        raise ValueError("at least one target (host:port) is required")
    return targets


def tls_credentials(ca=None, cert=None, key=None) -> grpc.ChannelCredentials:
    """``credentials`` for TLS from PEM files: ``ca``, the CA that signed the server's certificate (None: the
    system's); ``cert`` and ``key``, this client's certificate and key, for a server that verifies its clients
    (TF Serving's ``client_verify``)."""
    if (cert is None) != (key is None):
        raise ValueError("a client certificate and its key go together")
    read = lambda path: None if path is None else Path(path).read_bytes()  # noqa: E731
    return grpc.ssl_channel_credentials(read(ca), read(key), read(cert))


def _channel_options() -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        # Spread calls over every address a DNS name resolves to, not just the first.
        ("grpc.lb_policy_name", "round_robin"),
    ]


class _RequestBuilder:
    """Request and response conversion shared by the sync and async clients."""

    def __init__(self, model_name: str, version: int | None, version_label: str | None):
        self.model_name = model_name
        self.version = {"version": version, "version_label": version_label}
        self._spec(protos.PredictRequest().model_spec)  # ValueError now for a version and a label both

    def _spec(self, spec) -> None:
        signatures.model_spec(spec, self.model_name, **self.version)

    def answer_request(self, questions, contexts, **settings):
        """The request, and each question's top_k (to read its answers back with)."""
        inputs = signatures.answer_top_k_inputs(questions, contexts, **settings)
        return signatures.predict_request(TOP_K_SIGNATURE, inputs, self.model_name, **self.version), inputs["top_k"]

    @staticmethod
    def answers(response, top_ks) -> list:
        out = {k: make_ndarray(v) for k, v in response.outputs.items()}
        return signatures.answers_from_arrays(out, top_ks)

    def spans_request(self, input_ids, attention_mask):
        inputs = signatures.token_spans_inputs(input_ids, attention_mask)
        return signatures.predict_request(TOKEN_SPANS_SIGNATURE, inputs, self.model_name, **self.version)

    @staticmethod
    def spans(response) -> dict:
        return {k: make_ndarray(v).tolist() for k, v in response.outputs.items()}

    def metadata_request(self):
        request = protos.GetModelMetadataRequest()
        self._spec(request.model_spec)
        request.metadata_field.append("signature_def")
        return request

    @staticmethod
    def metadata(response) -> dict:
        signature_map = protos.SignatureDefMap.FromString(response.metadata["signature_def"].value)
        describe = lambda infos: {  # noqa: E731
            name: {"dtype": info.dtype, "shape": [d.size for d in info.tensor_shape.dim]}
            for name, info in infos.items()
        }
        return {
            "model": response.model_spec.name,
            "version": response.model_spec.version.value,
            "signatures": {
                name: {"inputs": describe(sig.inputs), "outputs": describe(sig.outputs)}
                for name, sig in signature_map.signature_def.items()
            },
        }

    def status_request(self):
        request = protos.GetModelStatusRequest()
        self._spec(request.model_spec)
        return request

    @staticmethod
    def status(response) -> list[dict]:
        return [
            {"version": s.version, "state": protos.ModelVersionStatus.State.Name(s.state)}
            for s in response.model_version_status
        ]


class _ClientBase:
    def __init__(
        self,
        target,
        model_name,
        *,
        version=None,
        version_label=None,
        timeout=30.0,
        credentials=None,
        metadata=None,
        retries=3,
        backoff=0.1,
    ):
        self.targets = _targets(target)
        self.builder = _RequestBuilder(model_name, version, version_label)
        self.timeout = timeout
        self.credentials = credentials
        self.call_metadata = tuple(metadata or ())
        self.retries = retries
        self.backoff = backoff
        self._next = itertools.cycle(range(len(self.targets)))

    def _then(self, response, convert):
        """``convert`` applied to a call's response: at once (QAClient), or when awaited (AsyncQAClient)."""
        raise NotImplementedError

    def answer(
        self,
        question: str,
        context: str,
        *,
        top_k: int = 1,
        max_answer_len: int = DEFAULT_MAX_ANSWER_LEN,
        handle_impossible_answer: bool = False,
        traceparent: str | None = None,
    ) -> dict | list[dict]:
        """The pipeline's result: ``{"answer", "score", "start", "end"}``, a list of them when top_k > 1."""
        results = self.answer_batch(
            [question],
            [context],
            top_k=top_k,
            max_answer_len=max_answer_len,
            handle_impossible_answer=handle_impossible_answer,
            traceparent=traceparent,
        )
        return self._then(results, lambda answers: answers[0])

    def answer_batch(
        self,
        questions: Sequence[str],
        contexts: Sequence[str],
        *,
        traceparent: str | None = None,
        **settings,
    ) -> list:
        """Answers many (question, context) pairs in one request, results in order (``tf_qa.signatures.Answerer``):
        ``settings`` are ``top_k``, ``max_answer_len`` and ``handle_impossible_answer``, each one value for all or
        one per question. ``traceparent``: the caller's W3C trace context, sent with this call
        (``tf_qa.tracing.new_traceparent`` makes one)."""
        request, top_ks = self.builder.answer_request(questions, contexts, **settings)
        response = self._call(self._predict, "Predict", request, traceparent)
        return self._then(response, lambda reply: self.builder.answers(reply, top_ks))

    def spans(self, input_ids, attention_mask) -> dict:
        """Token-level signature: ``{"start", "end", "score"}`` lists, one per row of ``input_ids``."""
        request = self.builder.spans_request(input_ids, attention_mask)
        return self._then(self._call(self._predict, "Predict", request), self.builder.spans)

    def metadata(self) -> dict:
        """The model's signatures (inputs and outputs with dtype and shape)."""
        response = self._call(self._predict, "GetModelMetadata", self.builder.metadata_request())
        return self._then(response, self.builder.metadata)

    def status(self) -> list[dict]:
        """``[{"version": N, "state": "AVAILABLE"}, ...]``."""
        response = self._call(self._models, "GetModelStatus", self.builder.status_request())
        return self._then(response, self.builder.status)

    def _metadata(self, traceparent: str | None) -> tuple:
        """The call's metadata: the client's, and the W3C ``traceparent`` when given (ValueError if malformed)."""
        if traceparent is None:
            return self.call_metadata
        if checked_traceparent(traceparent) is None:
            raise ValueError(f"not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>): {traceparent!r}")
        return (*self.call_metadata, ("traceparent", traceparent))

    def _attempts(self, traceparent: str | None) -> _Attempts:
        return _Attempts(self, traceparent)


class _Attempts:
    """One call's attempts: which target each goes to, its remaining deadline, and whether and when to try again.

    Retried, within ``retries`` and the call's deadline: UNAVAILABLE (jittered exponential backoff), and
    RESOURCE_EXHAUSTED when the server said when to come back (``grpc-retry-pushback-ms``, jittered by +-50% so that
    refused clients do not return together). Never INVALID_ARGUMENT or anything else.
    """

    def __init__(self, client: _ClientBase, traceparent: str | None):
        self.client, self.metadata = client, client._metadata(traceparent)
        self.started = time.monotonic()
        self.deadline = self.started + client.timeout
        self.attempt, self.index = -1, 0

    def next(self) -> tuple[int, dict]:
        """The target's index and the call's options for the next attempt."""
        self.attempt += 1
        self.index = next(self.client._next)
        return self.index, {"timeout": max(self.deadline - time.monotonic(), 0.001), "metadata": self.metadata}

    def pause_after(self, error: grpc.RpcError) -> float:
        """Seconds to wait before the next attempt; raises the tf-qa error when the call must not be retried."""
        client = self.client
        pushback = errors.retry_pushback(error) if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED else None
        if pushback is not None:
            pause = pushback * (0.5 + random.random())
        elif error.code() == grpc.StatusCode.UNAVAILABLE:
            pause = client.backoff * (2**self.attempt) * (0.5 + random.random() / 2)
        else:
            pause = None
        if pause is None or self.attempt >= client.retries or time.monotonic() + pause >= self.deadline:
            elapsed = time.monotonic() - self.started
            raise errors.from_grpc(error, target=client.targets[self.index], elapsed=elapsed) from None
        return pause


class QAClient(_ClientBase):
    """Synchronous client; use as a context manager or call ``close``.

    Args:
        target: ``host:port``, or several (a list or comma-separated) to round-robin over.
        model_name: the served model's name.
        version, version_label: pin a version (default: the server's choice, the newest).
        timeout: deadline of every call, in seconds (retries included).
        credentials: ``grpc.ssl_channel_credentials(...)`` for TLS; plaintext when None.
        metadata: per-call metadata, e.g. ``[("authorization", "Bearer TOKEN")]``.
        retries: extra attempts on UNAVAILABLE, and on RESOURCE_EXHAUSTED after the wait the server asked for
            (``grpc-retry-pushback-ms``), never past the deadline; never on INVALID_ARGUMENT or other errors.
        backoff: first retry delay in seconds, doubled each attempt, with jitter.
    """

    def __init__(self, target: str | Sequence[str], model_name: str, **options: Any):
        super().__init__(target, model_name, **options)
        make = (
            (lambda t: grpc.secure_channel(t, self.credentials, _channel_options()))
            if self.credentials
            else (lambda t: grpc.insecure_channel(t, _channel_options()))
        )
        self._channels = [make(t) for t in self.targets]
        self._predict = [protos.PredictionServiceStub(c) for c in self._channels]
        self._models = [protos.ModelServiceStub(c) for c in self._channels]

    def _call(self, stubs: list, method: str, request, traceparent: str | None = None):
        attempts = self._attempts(traceparent)
        while True:
            index, options = attempts.next()
            try:
                return getattr(stubs[index], method)(request, **options)
            except grpc.RpcError as error:
                time.sleep(attempts.pause_after(error))

    @staticmethod
    def _then(response, convert):
        return convert(response)

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def __enter__(self) -> QAClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncQAClient(_ClientBase):
    """The asyncio twin of ``QAClient``: the same arguments and methods, each returning an awaitable."""

    def __init__(self, target: str | Sequence[str], model_name: str, **options: Any):
        super().__init__(target, model_name, **options)
        make = (
            (lambda t: grpc.aio.secure_channel(t, self.credentials, _channel_options()))
            if self.credentials
            else (lambda t: grpc.aio.insecure_channel(t, _channel_options()))
        )
        self._channels = [make(t) for t in self.targets]
        self._predict = [protos.PredictionServiceStub(c) for c in self._channels]
        self._models = [protos.ModelServiceStub(c) for c in self._channels]

    async def _call(self, stubs: list, method: str, request, traceparent: str | None = None):
        attempts = self._attempts(traceparent)
        while True:
            index, options = attempts.next()
            try:
                return await getattr(stubs[index], method)(request, **options)
            except grpc.RpcError as error:
                await asyncio.sleep(attempts.pause_after(error))

    @staticmethod
    def _then(response, convert):
        async def converted():
            return convert(await response)

        return converted()

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def __aenter__(self) -> AsyncQAClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
