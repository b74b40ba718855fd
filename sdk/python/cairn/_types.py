"""Public value types of the SDK: plain dataclasses and string enums, built
from and turned into protocol messages by private helpers."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2

from cairn import _messages
from cairn._values import enum_table, struct_to_json, to_json, to_value
from cairn.v1 import errors_pb2, run_pb2, thread_pb2


class Durability(enum.StrEnum):
    """When a run's progress reaches the store (LangGraph's `durability`)."""

    SYNC = "sync"
    ASYNC = "async"
    EXIT = "exit"


class MultitaskStrategy(enum.StrEnum):
    """What a run start does when its thread has an active run."""

    REJECT = "reject"
    """Raise ThreadBusyError (the default)."""
    ENQUEUE = "enqueue"
    """Wait until the active run ends or stops at an interrupt, then start."""
    INTERRUPT = "interrupt"
    """Stop the active run, keeping what it stored, then start."""
    ROLLBACK = "rollback"
    """Stop the active run and delete it with its checkpoints, then start."""


class RunState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ThreadStatus(enum.StrEnum):
    IDLE = "idle"
    BUSY = "busy"
    INTERRUPTED = "interrupted"
    ERROR = "error"


class StreamMode(enum.StrEnum):
    VALUES = "values"
    UPDATES = "updates"
    CUSTOM = "custom"
    MESSAGES = "messages"
    TASKS = "tasks"
    CHECKPOINTS = "checkpoints"
    DEBUG = "debug"


_DURABILITY = enum_table(run_pb2.Durability, Durability)
_DURABILITY_PB = {v: k for k, v in _DURABILITY.items()}
_MULTITASK_PB = {v: k for k, v in enum_table(run_pb2.MultitaskStrategy, MultitaskStrategy).items()}
_RUN_STATE = enum_table(run_pb2.RunState, RunState)
_RUN_STATE_PB = {v: k for k, v in _RUN_STATE.items()}
_THREAD_STATUS = enum_table(thread_pb2.ThreadStatus, ThreadStatus)
_THREAD_STATUS_PB = {v: k for k, v in _THREAD_STATUS.items()}


class WaitReason(enum.StrEnum):
    """Why a task of a run is not running (see `RunWaiting`)."""

    NO_WORKER = "no_worker"
    """No connected worker serves the task's name; it runs once one connects."""
    WORKER_BUSY = "worker_busy"
    """Every worker serving the name is busy; it runs when a slot frees."""
    RETRY_BACKOFF = "retry_backoff"
    """The task failed and waits for its next attempt, `until`."""
    TIMER = "timer"
    """The entrypoint sleeps (`cairn.sleep`) `until`; no worker is held."""


_STREAM_MODE = enum_table(run_pb2.StreamMode, StreamMode)
_STREAM_MODE_PB = {v: k for k, v in _STREAM_MODE.items()}
_WAIT_REASON = enum_table(run_pb2.WaitReason, WaitReason)


def _time(stamp: Any) -> datetime | None:
    return stamp.ToDatetime() if stamp.seconds or stamp.nanos else None


def _duration(seconds: float) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromNanoseconds(int(seconds * 1e9))
    return message


RetryOn = type[BaseException] | Sequence[type[BaseException]] | Callable[[BaseException], bool]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failed task is retried, with LangGraph's defaults.

    `retry_on` decides which exceptions are retried: an exception class, a
    tuple of them, or a predicate; by default, as in LangGraph, everything but
    programming errors (ValueError, TypeError, LookupError, ...).

        @task(retry_policy=RetryPolicy(max_attempts=5, initial_interval=0.1))
        def fetch(url: str) -> str: ...
    """

    initial_interval: float = 0.5
    backoff_factor: float = 2.0
    max_interval: float = 128.0
    max_attempts: int = 3
    jitter: bool = True
    retry_on: (
        type[BaseException] | Sequence[type[BaseException]] | Callable[[BaseException], bool]
    ) = field(default=None)  # type: ignore[assignment]

    def retries(self, error: BaseException) -> bool:
        rule = self.retry_on
        if rule is None:
            return default_retry_on(error)
        if isinstance(rule, type):
            return isinstance(error, rule)
        if isinstance(rule, Sequence):
            return isinstance(error, tuple(rule))
        return bool(rule(error))

    def _to_proto(self) -> run_pb2.RetryPolicy:
        return run_pb2.RetryPolicy(
            initial_interval=_duration(self.initial_interval),
            backoff_factor=self.backoff_factor,
            max_interval=_duration(self.max_interval),
            max_attempts=self.max_attempts,
            jitter=self.jitter,
        )


Seconds = float | timedelta


def _seconds(value: Seconds | None, name: str) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not seconds > 0:  # NaN too
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class TaskTimeouts:
    """Temporal's activity timeouts for a task, each in seconds or as a
    `timedelta`; None (the default) is no limit. The service enforces them:

    - `schedule_to_start`: no worker took the task within it. The task fails
      with `TaskTimeoutError` (not retried); the run fails unless the caller
      catches it.
    - `start_to_close`: one attempt ran longer. The attempt is cancelled on
      its worker and fails with a retryable `TaskTimeoutError`; the task's
      RetryPolicy decides on another attempt.
    - `heartbeat`: the task must call `cairn.heartbeat()` at least this
      often. A worker that stops heartbeating loses the task, which runs
      again (same attempt) on another worker.

        @task(
            retry_policy=RetryPolicy(max_attempts=3),
            timeouts=TaskTimeouts(start_to_close=60, heartbeat=timedelta(seconds=10)),
        )
        def crawl(url: str) -> list[str]:
            for page in pages(url):
                heartbeat({"page": page})
                ...

    An entrypoint takes only `schedule_to_start` ("no worker took this run").
    A sync task is cancelled only when it next calls `heartbeat()` (or
    awaits a task): Python cannot stop a thread.
    """

    schedule_to_start: Seconds | None = None
    start_to_close: Seconds | None = None
    heartbeat: Seconds | None = None

    def __post_init__(self) -> None:
        for name in ("schedule_to_start", "start_to_close", "heartbeat"):
            _seconds(getattr(self, name), name)

    @property
    def _holds_worker(self) -> bool:
        """The service may take an attempt back: never run it locally."""
        return self.start_to_close is not None or self.heartbeat is not None

    def _to_proto(self) -> run_pb2.TaskTimeouts:
        message = run_pb2.TaskTimeouts()
        for name in ("schedule_to_start", "start_to_close", "heartbeat"):
            seconds = _seconds(getattr(self, name), name)
            if seconds is not None:
                getattr(message, f"{name}_timeout").CopyFrom(_duration(seconds))
        return message


_NOT_RETRIED = (
    ValueError,
    TypeError,
    ArithmeticError,
    ImportError,
    LookupError,
    NameError,
    SyntaxError,
    RuntimeError,
    ReferenceError,
    StopIteration,
    StopAsyncIteration,
    OSError,
)


def default_retry_on(error: BaseException) -> bool:
    """LangGraph's default: retry connection problems and unknown errors, not
    programming errors."""
    if isinstance(error, ConnectionError):
        return True
    return not isinstance(error, _NOT_RETRIED)


@dataclass(frozen=True, slots=True)
class Interrupt:
    """A pending `interrupt(value)`. Resume it with `Command(resume=...)`, or
    `Command(resume={interrupt.id: value})` when several are pending."""

    value: Any
    id: str
    task_id: str = ""
    task_name: str = ""
    index: int = 0
    timeout: datetime | None = None
    """When the service answers it if nobody did (`interrupt(..., timeout=)`),
    in UTC; None: it waits for ever."""
    timeout_default: Any = None
    """What the interrupt() call returns then (None also when it raises
    InterruptTimeoutError instead)."""

    @classmethod
    def _from_proto(cls, message: run_pb2.Interrupt) -> Interrupt:
        return cls(
            value=to_json(message.value),
            id=message.id,
            task_id=message.task_id,
            task_name=message.task_name,
            index=message.index,
            timeout=_time(message.timeout_time) if message.HasField("timeout_time") else None,
            timeout_default=to_json(message.timeout_default)
            if message.HasField("timeout_default")
            else None,
        )


def _is_interrupt_id(key: object) -> bool:
    try:
        return isinstance(key, str) and str(uuid.UUID(key)) == key
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Send:
    """Run `node` with `arg` as its input in the next step, as LangGraph's
    `Send`: return it from a router (or in a `Command`'s `goto`) to fan out,
    one task per Send.

        def fan_out(state: State) -> list[Send]:
            return [Send("summarize", {"doc": doc}) for doc in state["docs"]]
    """

    node: str
    arg: Any


@dataclass(frozen=True, slots=True)
class Command:
    """Resumes an interrupted run, or, returned by a graph node, updates the
    state and says where to go next, as LangGraph's `Command`.

    `resume` answers the single pending interrupt. As in LangGraph, a dict
    whose keys are all interrupt ids answers several pending interrupts by id:

        Command(resume={interrupts[0].id: "yes", interrupts[1].id: "no"})

    A node returns `update` (the state update) and `goto` (a node name, a
    `Send`, or a list of them; `END` to stop):

        def triage(state: State) -> Command:
            return Command(update={"label": "bug"}, goto="fix")
    """

    resume: Any = None
    update: Any = None
    goto: str | Send | Sequence[str | Send] = ()

    def _to_proto(self) -> run_pb2.Command:
        if self.update is not None or self.goto:
            raise ValueError(
                "Command(update=..., goto=...) is returned by graph nodes; "
                "resume a run with Command(resume=...)"
            )
        resume = self.resume
        if isinstance(resume, dict) and resume and all(_is_interrupt_id(k) for k in resume):
            values = {k: to_value(v) for k, v in resume.items()}
            return run_pb2.Command(resume_map=run_pb2.ResumeMap(values=values))
        return run_pb2.Command(resume=to_value(resume))


@dataclass(frozen=True, slots=True)
class ErrorDetails:
    """An exception raised by a task or an entrypoint."""

    type: str
    message: str
    retryable: bool = False
    traceback: str = ""

    @classmethod
    def _from_proto(cls, message: errors_pb2.TaskError) -> ErrorDetails:
        return cls(message.type, message.message, message.retryable, message.traceback)


@dataclass(frozen=True, slots=True)
class RunWaiting:
    """A task or entrypoint an active run waits on, and why: `Run.waiting`.

    for waiting in run.waiting:
        if waiting.reason is WaitReason.NO_WORKER:
            print(f"start a worker serving {waiting.task_name!r}")
    """

    reason: WaitReason
    task_name: str
    task_id: str = ""
    since: datetime | None = None
    until: datetime | None = None
    """For RETRY_BACKOFF: when the next attempt is due."""
    namespace: tuple[str, ...] = ()

    @classmethod
    def _from_proto(cls, message: run_pb2.RunWaiting) -> RunWaiting:
        return cls(
            reason=_WAIT_REASON.get(message.reason, WaitReason.NO_WORKER),
            task_name=message.task_name,
            task_id=message.task_id,
            since=_time(message.since_time),
            until=_time(message.until_time) if message.HasField("until_time") else None,
            namespace=tuple(message.namespace),
        )


@dataclass(frozen=True, slots=True)
class Run:
    """One run of an entrypoint on a thread. While it is active, `waiting`
    lists what it waits on (empty while all its tasks run); each change is
    also a lifecycle event of `stream` and `join`."""

    run_id: str
    thread_id: str
    target: str
    state: RunState
    durability: Durability
    output: Any = None
    interrupts: tuple[Interrupt, ...] = ()
    error: ErrorDetails | None = None
    checkpoint_id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    waiting: tuple[RunWaiting, ...] = ()

    @classmethod
    def _from_proto(cls, message: run_pb2.Run) -> Run:
        return cls(
            run_id=message.run_id,
            thread_id=message.thread_id,
            target=message.target,
            state=_RUN_STATE.get(message.state, RunState.PENDING),
            durability=_DURABILITY.get(message.durability, Durability.ASYNC),
            output=to_json(message.output) if message.HasField("output") else None,
            interrupts=tuple(Interrupt._from_proto(i) for i in message.interrupts),
            error=ErrorDetails._from_proto(message.error) if message.HasField("error") else None,
            checkpoint_id=message.checkpoint.checkpoint_id,
            metadata=struct_to_json(message.metadata),
            created_at=_time(message.create_time),
            updated_at=_time(message.update_time),
            waiting=tuple(RunWaiting._from_proto(w) for w in message.waiting),
        )


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One event of a run's log. For stream chunks `mode` is a StreamMode and
    `data` the chunk (for "messages", LangGraph's `(message_chunk, metadata)`
    pair, see cairn/_messages.py); for lifecycle events `mode` is
    "lifecycle" and `run` is the run in its new state: it started, ended,
    stopped at an interrupt, or started or stopped waiting (`run.waiting`)."""

    event_id: int
    run_id: str
    mode: str
    data: Any = None
    namespace: tuple[str, ...] = ()
    run: Run | None = None

    @classmethod
    def _from_proto(cls, message: run_pb2.RunEvent) -> RunEvent:
        if message.HasField("run"):
            run = Run._from_proto(message.run)
            return cls(message.event_id, message.run_id, "lifecycle", None, (), run)
        chunk = message.chunk
        data = to_json(chunk.data)
        if chunk.mode == run_pb2.STREAM_MODE_MESSAGES:
            data = _messages.pair(data)
        return cls(
            message.event_id,
            message.run_id,
            _STREAM_MODE[chunk.mode].value,
            data,
            tuple(chunk.namespace),
        )


@dataclass(frozen=True, slots=True)
class Thread:
    thread_id: str
    status: ThreadStatus
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def _from_proto(cls, message: thread_pb2.Thread) -> Thread:
        return cls(
            thread_id=message.thread_id,
            status=_THREAD_STATUS.get(message.status, ThreadStatus.IDLE),
            metadata=struct_to_json(message.metadata),
            created_at=_time(message.create_time),
            updated_at=_time(message.update_time),
        )


@dataclass(frozen=True, slots=True)
class PregelTask:
    """A task of a checkpoint, as in LangGraph's StateSnapshot.tasks."""

    id: str
    name: str
    result: Any = None
    error: ErrorDetails | None = None
    interrupts: tuple[Interrupt, ...] = ()
    path: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """A thread's state at one checkpoint, as LangGraph's `get_state`."""

    values: Any
    next: tuple[str, ...]
    config: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime | None
    parent_config: dict[str, Any] | None
    tasks: tuple[PregelTask, ...]
    interrupts: tuple[Interrupt, ...]

    @classmethod
    def _from_proto(cls, message: thread_pb2.StateSnapshot) -> StateSnapshot:
        def config(ref: run_pb2.CheckpointRef) -> dict[str, Any]:
            return {
                "configurable": {
                    "thread_id": ref.thread_id,
                    "checkpoint_ns": ref.checkpoint_ns,
                    "checkpoint_id": ref.checkpoint_id,
                }
            }

        return cls(
            values=to_json(message.values) if message.HasField("values") else None,
            next=tuple(message.next),
            config=config(message.config) if message.HasField("config") else {},
            metadata=struct_to_json(message.metadata),
            created_at=_time(message.create_time),
            parent_config=config(message.parent_config)
            if message.HasField("parent_config")
            else None,
            tasks=tuple(
                PregelTask(
                    id=t.id,
                    name=t.name,
                    result=to_json(t.result) if t.HasField("result") else None,
                    error=ErrorDetails._from_proto(t.error) if t.HasField("error") else None,
                    interrupts=tuple(Interrupt._from_proto(i) for i in t.interrupts),
                    path=tuple(t.path),
                )
                for t in message.tasks
            ),
            interrupts=tuple(Interrupt._from_proto(i) for i in message.interrupts),
        )
