"""W3C Trace Context (``traceparent``) as tf-qa carries it: the clients send one per call (optional), the server
puts it in its request log and its log lines, so a slow or failed answer can be found from the caller's trace.

Example:

>>> value = new_traceparent()
>>> checked_traceparent(value) == value, checked_traceparent("not-a-trace")
(True, None)
"""

from __future__ import annotations

import re
import secrets

#: version 00: 32 hex digits of trace id, 16 of parent id, 2 of flags; ids of all zeros are invalid.
_TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")


def new_traceparent(sampled: bool = True) -> str:
    """A new trace's ``traceparent``: random trace and parent ids."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-{'01' if sampled else '00'}"


def checked_traceparent(value: str | None) -> str | None:
    """``value`` when it is a valid version-00 ``traceparent``, else None (the W3C rule: a malformed one is
    ignored, never an error)."""
    if value and _TRACEPARENT.match(value.strip().lower()):
        return value.strip().lower()
    return None
