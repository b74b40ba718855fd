"""Domain types shared by the engine, the store, dispatch and the API layer.

They carry JSON values as plain Python objects (dict, list, str, int, float,
bool, None) and never import grpc or generated code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias

Json: TypeAlias = Any
"""A JSON-compatible Python value."""

# Supersteps a graph run may take, unless the run says otherwise (LangGraph's default).
DEFAULT_RECURSION_LIMIT = 25


class ThreadStatus(enum.StrEnum):
    IDLE = "idle"
    BUSY = "busy"
    INTERRUPTED = "interrupted"
    ERROR = "error"


class RunState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        return self in (RunState.PENDING, RunState.RUNNING)


class Durability(enum.StrEnum):
    SYNC = "sync"
    ASYNC = "async"
    EXIT = "exit"


class MultitaskStrategy(enum.StrEnum):
    """What a run start does when its thread has an active run."""

    REJECT = "reject"
    ENQUEUE = "enqueue"
    INTERRUPT = "interrupt"
    ROLLBACK = "rollback"


class StreamMode(enum.StrEnum):
    VALUES = "values"
    UPDATES = "updates"
    CUSTOM = "custom"
    MESSAGES = "messages"
    TASKS = "tasks"
    CHECKPOINTS = "checkpoints"
    DEBUG = "debug"


class TaskKind(enum.StrEnum):
    TASK = "task"
    ENTRYPOINT = "entrypoint"


@dataclass(slots=True)
class ErrorRecord:
    """An exception raised by a task, in language-neutral form."""

    type: str
    message: str
    retryable: bool = False
    traceback: str = ""
    details: dict[str, Json] | None = None

    def to_json(self) -> dict[str, Json]:
        return {
            "type": self.type,
            "message": self.message,
            "retryable": self.retryable,
            "traceback": self.traceback,
            "details": self.details,
        }

    @classmethod
    def from_json(cls, data: dict[str, Json]) -> ErrorRecord:
        return cls(
            type=data["type"],
            message=data["message"],
            retryable=bool(data.get("retryable", False)),
            traceback=data.get("traceback", ""),
            details=data.get("details"),
        )


@dataclass(slots=True)
class InterruptRecord:
    """A pending `interrupt(value)` call."""

    id: str
    value: Json
    task_id: str
    task_name: str
    index: int
    timeout_at: float | None = None
    """When the service answers it itself (the timer clock); None: never."""
    has_default: bool = False
    default: Json = None
    """What interrupt() returns on a timeout (else it raises)."""

    def to_json(self) -> dict[str, Json]:
        data: dict[str, Json] = {
            "id": self.id,
            "value": self.value,
            "task_id": self.task_id,
            "task_name": self.task_name,
            "index": self.index,
        }
        if self.timeout_at is not None:
            data["timeout_at"] = self.timeout_at
            if self.has_default:
                data["default"] = self.default
        return data

    @classmethod
    def from_json(cls, data: dict[str, Json]) -> InterruptRecord:
        timeout_at = data.get("timeout_at")
        return cls(
            id=data["id"],
            value=data.get("value"),
            task_id=data["task_id"],
            task_name=data["task_name"],
            index=int(data["index"]),
            timeout_at=None if timeout_at is None else float(timeout_at),
            has_default="default" in data,
            default=data.get("default"),
        )


@dataclass(slots=True)
class RetryPolicy:
    """LangGraph's RetryPolicy defaults; `retry_on` is decided by the worker."""

    initial_interval: float = 0.5
    backoff_factor: float = 2.0
    max_interval: float = 128.0
    max_attempts: int = 3
    jitter: bool = True


@dataclass(slots=True, frozen=True)
class TaskTimeouts:
    """Temporal's activity timeouts, in seconds; None means no limit (see
    TaskTimeouts in run.proto for what each expiry does)."""

    schedule_to_start: float | None = None
    start_to_close: float | None = None
    heartbeat: float | None = None

    @property
    def hold_the_worker(self) -> bool:
        """Whether the service must be able to take an attempt back from its
        worker (so the call may not run locally)."""
        return self.start_to_close is not None or self.heartbeat is not None


class WaitReason(enum.StrEnum):
    """Why a task of a run is not running (RunWaiting in run.proto)."""

    NO_WORKER = "no_worker"
    WORKER_BUSY = "worker_busy"
    RETRY_BACKOFF = "retry_backoff"
    TIMER = "timer"


@dataclass(slots=True, frozen=True)
class WaitRecord:
    """A task or entrypoint a run waits on: since when, why, and for a retry
    backoff until when."""

    reason: WaitReason
    task_id: str
    task_name: str
    since: float
    until: float | None = None
    namespace: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for logs and tables."""
        if self.reason is WaitReason.NO_WORKER:
            return f"no connected worker serves {self.task_name!r}"
        if self.reason is WaitReason.WORKER_BUSY:
            return f"every worker serving {self.task_name!r} is busy"
        if self.reason is WaitReason.TIMER:
            until = datetime.fromtimestamp(self.until or 0.0, UTC).isoformat(timespec="seconds")
            return f"{self.task_name!r} sleeps until {until}"
        return f"{self.task_name!r} waits for its retry"

    def to_json(self) -> dict[str, Json]:
        return {
            "reason": self.reason.value,
            "task_id": self.task_id,
            "task_name": self.task_name,
            "since": self.since,
            "until": self.until,
            "namespace": list(self.namespace),
        }

    @classmethod
    def from_json(cls, data: dict[str, Json]) -> WaitRecord:
        return cls(
            reason=WaitReason(data["reason"]),
            task_id=data["task_id"],
            task_name=data["task_name"],
            since=float(data["since"]),
            until=None if data.get("until") is None else float(data["until"]),
            namespace=tuple(data.get("namespace", ())),
        )


@dataclass(slots=True)
class ThreadRecord:
    thread_id: str
    created_at: float
    updated_at: float
    metadata: dict[str, Json] = field(default_factory=dict)
    status: ThreadStatus = ThreadStatus.IDLE
    request_id: str = ""


@dataclass(slots=True)
class RunRecord:
    run_id: str
    thread_id: str
    target: str
    state: RunState
    durability: Durability
    created_at: float
    updated_at: float
    checkpoint_id: str
    metadata: dict[str, Json] = field(default_factory=dict)
    stream_modes: list[StreamMode] = field(default_factory=list)
    request_id: str = ""
    has_output: bool = False
    output: Json = None
    interrupts: list[InterruptRecord] = field(default_factory=list)
    error: ErrorRecord | None = None
    request_hash: str = ""
    recursion_limit: int = DEFAULT_RECURSION_LIMIT  # supersteps a graph run may take
    waiting: list[WaitRecord] = field(default_factory=list)
    """What the run waits on while active (runtime/waiting.py); empty otherwise."""
    trace_context: dict[str, str] = field(default_factory=dict)
    """The W3C trace context of the run's span (`traceparent`, `tracestate`):
    sent with its tasks, continued by a resume (cairn_server/tracing)."""


@dataclass(slots=True)
class CheckpointRecord:
    """One checkpoint of a thread; channel values are stored per version."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    channel_values: dict[str, Json]
    channel_versions: dict[str, str]
    metadata: dict[str, Json]
    created_at: float
    langgraph: dict[str, Json] | None = None
    """For a checkpoint a LangGraph application put through CheckpointService:
    its checkpoint (versions_seen, ts, ...) decoded for display. Its channel
    values and writes are decoded as far as they can be (see
    store/typed_values.py); native runs never start from such a checkpoint."""


@dataclass(slots=True)
class PendingWrite:
    """A write attached to a checkpoint by a task: a result, error, interrupt
    or resume value. Writes to special channels (negative idx) are upserted;
    the others are insert-or-ignore, so the first recorded result wins."""

    task_id: str
    idx: int
    channel: str
    value: Json
    task_path: str = ""


@dataclass(slots=True)
class EventRecord:
    """One entry of a run's event log. `kind` is "chunk" (payload: mode, data,
    namespace) or "run" (payload: the run as JSON)."""

    run_id: str
    event_id: int
    created_at: float
    kind: str
    payload: dict[str, Json]


def run_to_json(run: RunRecord) -> dict[str, Json]:
    """A run as the JSON payload of its lifecycle events."""
    return {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "target": run.target,
        "state": run.state.value,
        "durability": run.durability.value,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "checkpoint_id": run.checkpoint_id,
        "metadata": run.metadata,
        "stream_modes": [m.value for m in run.stream_modes],
        "request_id": run.request_id,
        "has_output": run.has_output,
        "output": run.output,
        "interrupts": [i.to_json() for i in run.interrupts],
        "error": run.error.to_json() if run.error else None,
        "waiting": [w.to_json() for w in run.waiting],
    }


def run_from_json(data: dict[str, Json]) -> RunRecord:
    return RunRecord(
        run_id=data["run_id"],
        thread_id=data["thread_id"],
        target=data["target"],
        state=RunState(data["state"]),
        durability=Durability(data["durability"]),
        created_at=data["created_at"],
        updated_at=data["updated_at"],
        checkpoint_id=data["checkpoint_id"],
        metadata=data.get("metadata") or {},
        stream_modes=[StreamMode(m) for m in data.get("stream_modes", [])],
        request_id=data.get("request_id", ""),
        has_output=bool(data.get("has_output")),
        output=data.get("output"),
        interrupts=[InterruptRecord.from_json(i) for i in data.get("interrupts", [])],
        error=ErrorRecord.from_json(data["error"]) if data.get("error") else None,
        waiting=[WaitRecord.from_json(w) for w in data.get("waiting", [])],
    )
