"""Messages a run's actor receives, from workers, timers and clients."""

from __future__ import annotations

from dataclasses import dataclass

from cairn_server.domain import ErrorRecord, Json, RetryPolicy, StreamMode, TaskTimeouts


@dataclass(slots=True, frozen=True)
class Assigned:
    task_id: str


@dataclass(slots=True, frozen=True)
class Lost:
    task_id: str


@dataclass(slots=True, frozen=True)
class LocalRun:
    """A call the calling worker runs itself (ScheduleTask's `local`): it
    already returned `result` or raised `error`, or, with neither, it is
    running and its worker holds it."""

    has_result: bool = False
    result: Json = None
    error: ErrorRecord | None = None

    @property
    def running(self) -> bool:
        return not self.has_result and self.error is None


@dataclass(slots=True, frozen=True)
class Scheduled:
    parent_id: str
    index: int
    name: str
    input: Json
    retry_policy: RetryPolicy | None
    local: LocalRun | None = None
    timeouts: TaskTimeouts | None = None  # the call's own (ScheduleTask.timeouts)


@dataclass(slots=True, frozen=True)
class Completed:
    task_id: str
    result: Json
    has_save: bool = False
    save: Json = None


@dataclass(slots=True, frozen=True)
class Failed:
    task_id: str
    error: ErrorRecord


@dataclass(slots=True, frozen=True)
class Interrupted:
    task_id: str
    index: int
    value: Json
    timeout: float | None = None  # seconds from when the run applies it
    has_default: bool = False
    default: Json = None


@dataclass(slots=True, frozen=True)
class Sleeping:
    """The entrypoint sleeps (TaskSleeping): for `duration` seconds from when
    the run applies this, or until `wake_time` (the timer clock's seconds)."""

    task_id: str
    index: int
    duration: float | None = None
    wake_time: float | None = None


@dataclass(slots=True, frozen=True)
class Suspended:
    task_id: str


@dataclass(slots=True, frozen=True)
class Chunk:
    task_id: str
    mode: StreamMode
    data: Json


@dataclass(slots=True, frozen=True)
class FromLocalCopy:
    """`message` from the worker running `task_id` as a local call; dropped
    if the run refused that local run (the call then runs elsewhere)."""

    task_id: str
    message: Scheduled | Completed | Failed | Interrupted | Sleeping | Suspended | Chunk


@dataclass(slots=True, frozen=True)
class TimedOut:
    """The service failed the task's attempt on a schedule-to-start (the
    task was queued) or a start-to-close timeout (a worker held it)."""

    task_id: str
    error: ErrorRecord


@dataclass(slots=True, frozen=True)
class HeartbeatDetails:
    """The details of the task's last heartbeat, for its next assignment."""

    task_id: str
    details: Json


@dataclass(slots=True, frozen=True)
class RetryDue:
    task_id: str


@dataclass(slots=True, frozen=True)
class Waiting:
    """The task is queued and no worker can take it now (the dispatcher
    knows why: Dispatcher.wait_reason)."""

    task_id: str
    name: str
    path: tuple[str, ...]


@dataclass(slots=True, frozen=True)
class WaitingDue:
    """Time to publish what the run waits on (runtime/waiting.py)."""


@dataclass(slots=True, frozen=True)
class CancelRequested:
    pass


@dataclass(slots=True, frozen=True)
class LeaseLost:
    """Another replica took the run over: stop driving it, write nothing."""


@dataclass(slots=True, frozen=True)
class StoreRetry:
    """A background commit failed: store what failed again, then go on."""


Message = (
    Assigned
    | Lost
    | Scheduled
    | Completed
    | Failed
    | Interrupted
    | Sleeping
    | Suspended
    | Chunk
    | FromLocalCopy
    | TimedOut
    | HeartbeatDetails
    | RetryDue
    | Waiting
    | WaitingDue
    | CancelRequested
    | LeaseLost
    | StoreRetry
)
