"""Identifiers.

New ids are UUIDv7 strings: they sort by creation time (lexicographically), as
LangGraph's checkpoint ids do. Task and interrupt ids are derived
deterministically, so a replay computes the same ids again.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid

_lock = threading.Lock()
_last = 0


def new_id() -> str:
    """A UUIDv7 that is strictly greater than every id this process made before."""
    global _last
    with _lock:
        stamp = max(time.time_ns() // 1_000, _last + 1)  # microseconds, monotonic
        _last = stamp
    millis, micros = divmod(stamp, 1_000)
    # 48 bits of milliseconds, version 7, 12 bits of sub-millisecond time, then random.
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (micros * 4096 // 1000) << 64
    value |= 0b10 << 62
    value |= int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def derive_id(*parts: str | int) -> str:
    """A stable UUID-shaped id derived from `parts`."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=5))
