"""What the dispatcher hands to workers, in domain terms; `api/` turns them
into ConnectResponse messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from cairn_server import namespaces
from cairn_server.domain import ErrorRecord, Json, RetryPolicy, TaskKind, TaskTimeouts, WaitReason
from cairn_server.engine.decisions import Deliver, JournalEntry
from cairn_server.errors import ServiceError


@dataclass(slots=True, frozen=True)
class Registration:
    name: str
    """Scoped by the worker's namespace (namespaces.scoped)."""
    kind: TaskKind
    retry_policy: RetryPolicy | None = None
    timeouts: TaskTimeouts | None = None


class Relayed(Protocol):
    """Where the worker messages of a task that another replica's run sent
    here go (api/relay.py)."""

    def lost(self, assignment: Assignment) -> None:
        """The worker holding `assignment` went away."""

    def failed(self, assignment: Assignment, error: ErrorRecord) -> None:
        """`assignment` fails with `error` (not retried) without reaching its
        worker: the replica that owns it is told, as by the worker."""


@dataclass(slots=True)
class Assignment:
    """A task to run on a worker serving `name`."""

    task_id: str
    name: str
    run_id: str
    thread_id: str
    checkpoint_id: str
    attempt: int
    input: Json
    journal: tuple[JournalEntry, ...]
    resume: tuple[Json, ...]
    path: tuple[str, ...]
    is_root: bool
    has_previous: bool = False
    previous: Json = None
    kind: TaskKind = TaskKind.TASK  # set from the receiving worker's registration
    first_fresh_call: int = 0
    announce_calls: bool = False
    stream_messages: bool = False  # the run streams chat-model tokens (mode messages)
    local: bool = False  # a call its worker runs itself (ScheduleTask.local_running)
    relay: Relayed | None = None  # the task of a run another replica drives
    timeouts: TaskTimeouts | None = None  # enforced by dispatch/timeouts.py
    has_heartbeat_details: bool = False
    heartbeat_details: Json = None  # the last ones an earlier holder sent
    wait_reason: WaitReason | None = None  # while queued: why (Dispatcher.on_waiting)
    trace_context: dict[str, str] | None = None  # the run's W3C context (cairn_server/tracing)
    timed_out: tuple[int, ...] = ()  # resume positions whose interrupt timed out
    route: str = field(init=False)
    """The name scoped by the namespace of the run's thread: the workers that
    may take the task register it (set once; the dispatcher reads it often)."""

    def __post_init__(self) -> None:
        self.route = namespaces.beside(self.thread_id, self.name)


@dataclass(slots=True, frozen=True)
class CancelNotice:
    task_id: str
    reason: str


@dataclass(slots=True, frozen=True)
class Rejected:
    """A worker message the service did not accept; metadata names the task."""

    error: ServiceError


@dataclass(slots=True, frozen=True)
class Forwarded:
    """A message from the replica that owns a relayed task, passed on to
    the worker as it came (api/relay.py)."""

    message: object


Outgoing = Assignment | Deliver | CancelNotice | Rejected | Forwarded | None
"""None closes the worker's stream."""
