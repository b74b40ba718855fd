"""Task ids the service derives, computed on the worker too (local calls)."""

from __future__ import annotations

import hashlib
import uuid


def child_task_id(parent_task_id: str, index: int) -> str:
    """The id of call `index` of task `parent_task_id`: the first 16 bytes of
    the SHA-256 of "<parent>\\x1f<index>" as a version-5 UUID (the protocol's
    rule, see ScheduleTask in worker_service.proto)."""
    digest = hashlib.sha256(f"{parent_task_id}\x1f{index}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=5))
