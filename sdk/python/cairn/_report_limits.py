"""Reports checked against the service's payload limit before they are sent.

The service refuses a report larger than Welcome.max_payload_bytes, and one
larger than its stream's message limit breaks the stream: the task would be
dispatched again and refused again, for ever. So an oversized report never
leaves the worker as it is (the rules are in WorkerService's Welcome
comment): an outcome becomes a TaskFailed of type PayloadTooLargeError, not
retryable; a call fails where the task made it; stream data and heartbeat
details are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from cairn.v1 import errors_pb2, worker_service_pb2

pb = worker_service_pb2

PAYLOAD_TOO_LARGE = "PayloadTooLargeError"

_OUTCOMES = ("completed", "failed", "interrupted")


@dataclass(frozen=True, slots=True)
class Oversized:
    """A report over the limit: what it is, about which task, how large."""

    kind: str
    task_id: str
    size: int
    limit: int

    def error(self, what: str = "") -> errors_pb2.TaskError:
        names = {"schedule": "call", "completed": "result", "interrupted": "interrupt"}
        return errors_pb2.TaskError(
            type=PAYLOAD_TOO_LARGE,
            message=(
                f"the task's {what or names.get(self.kind, self.kind)} report is"
                f" {self.size} bytes;"
                f" the service accepts at most {self.limit} (max_payload_bytes)"
            ),
            retryable=False,
        )


def oversized(message: pb.ConnectRequest, limit: int) -> Oversized | None:
    """The report `message` when it is over `limit` bytes (0: no limit)."""
    kind = message.WhichOneof("kind")
    if not limit or kind in (None, "hello", "batch"):
        return None
    inner = getattr(message, kind)
    size = inner.ByteSize()
    if size <= limit:
        return None
    task_id = inner.parent_task_id if kind == "schedule" else inner.task_id
    return Oversized(kind, task_id, size, limit)


def replacement(found: Oversized) -> pb.ConnectRequest | None:
    """What goes to the service instead: a TaskFailed for an outcome (or a
    local call's outcome, which its caller would report), nothing for a
    chunk (the caller drops it) or a call (the caller fails it in the
    task), a heartbeat without its details."""
    if found.kind in _OUTCOMES:
        return pb.ConnectRequest(failed=pb.TaskFailed(task_id=found.task_id, error=found.error()))
    if found.kind == "heartbeat":  # the beat still counts
        return pb.ConnectRequest(heartbeat=pb.TaskHeartbeat(task_id=found.task_id))
    return None
