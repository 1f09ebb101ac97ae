"""A raw HTTP POST for REST tests: any body, any headers (a length it does not send, no length at all)."""

from __future__ import annotations

import http.client
import json


def post(port: int, path: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    """POSTs ``body`` with ``headers`` (default: its Content-Length); returns the status and the JSON reply."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.putrequest("POST", path)
        for key, value in (headers or {"Content-Length": str(len(body))}).items():
            connection.putheader(key, value)
        connection.endheaders()
        if body:
            connection.send(body)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()
