"""How large the service's gRPC messages may be, and how their size adds up:
one place for the worker streams (api/worker_frames.py, api/relay.py) and
the state responses (api/threads.py, api/convert.py) to page within."""

from __future__ import annotations

MIB = 1024 * 1024

FIELD_OVERHEAD = 6
"""Bytes a repeated message field adds per element at most (tag and length
prefix) beyond the element's own size, for elements under 2**28 bytes."""


def max_message_bytes(max_payload_bytes: int) -> int:
    """The gRPC message limit of every call: room for a payload at the limit
    plus the message around it, so that oversized values get
    PAYLOAD_TOO_LARGE rather than a transport error."""
    return 2 * max_payload_bytes + MIB
