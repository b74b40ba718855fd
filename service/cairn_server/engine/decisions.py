"""What the engine asks its host to do. The host executes decisions in order."""

from __future__ import annotations

from dataclasses import dataclass

from cairn_server.domain import (
    CheckpointRecord,
    ErrorRecord,
    InterruptRecord,
    Json,
    PendingWrite,
    StreamMode,
    TaskTimeouts,
)


@dataclass(slots=True, frozen=True)
class JournalEntry:
    """A recorded child call, replayed by the worker without a round trip."""

    index: int
    name: str
    task_id: str
    result: Json


@dataclass(slots=True, frozen=True)
class Dispatch:
    """Hand a task to a worker serving `name`."""

    task_id: str
    name: str
    attempt: int
    input: Json
    journal: tuple[JournalEntry, ...]
    resume: tuple[Json, ...]
    path: tuple[str, ...]
    is_root: bool = False
    label: str = ""  # the name streams show (a graph node's name)
    local: bool = False  # the calling worker runs it already: announce, do not send
    first_fresh_call: int = 0  # calls from this position on have no history
    timeouts: TaskTimeouts | None = None  # the call's own; else the registered ones
    timed_out: tuple[int, ...] = ()  # resume positions whose interrupt timed out (raises)


@dataclass(slots=True, frozen=True)
class Deliver:
    """Send a child's outcome to the worker holding its parent. Exactly one of
    result (with has_result), error and interrupt is set."""

    parent_id: str
    index: int
    child_id: str
    has_result: bool = False
    result: Json = None
    error: ErrorRecord | None = None
    interrupt: InterruptRecord | None = None


@dataclass(slots=True, frozen=True)
class Record:
    """Store pending writes (per the run's durability) before executing any
    later decision: on the given checkpoint of a subgraph, or when
    `checkpoint_id` is empty on the run's current checkpoint."""

    writes: tuple[PendingWrite, ...]
    checkpoint_ns: str = ""
    checkpoint_id: str = ""


@dataclass(slots=True, frozen=True)
class Emit:
    """Append a stream chunk to the run's event log."""

    mode: StreamMode
    data: Json
    namespace: tuple[str, ...] = ()


@dataclass(slots=True, frozen=True)
class RetryLater:
    """Call `Engine.retry_due(task_id)` after `delay` seconds."""

    task_id: str
    delay: float
    name: str = ""  # what the run waits on meanwhile (RunWaiting)
    path: tuple[str, ...] = ()


@dataclass(slots=True, frozen=True)
class Cancel:
    """Withdraw running tasks from their workers."""

    task_ids: tuple[str, ...]


@dataclass(slots=True, frozen=True)
class NewCheckpoint:
    """Store a checkpoint (per the run's durability); later writes attach to
    it."""

    checkpoint: CheckpointRecord


@dataclass(slots=True, frozen=True)
class Finish:
    """The run is over. `state` is one of succeeded, failed, interrupted,
    cancelled."""

    state: str
    output: Json = None
    interrupts: tuple[InterruptRecord, ...] = ()
    error: ErrorRecord | None = None


@dataclass(slots=True, frozen=True)
class Park:
    """The run sleeps until `wake_at` (its earliest timer, seconds on the
    service's timer clock): store what it holds and drive it no further
    here. Whichever replica holds the run when it is due resumes it from
    its checkpoint (`TaskTree.wake_timers`, then `start`)."""

    wake_at: float
    timer_id: str
    task_name: str  # the sleeping entrypoint's


Decision = Dispatch | Deliver | Record | Emit | RetryLater | Cancel | NewCheckpoint | Finish | Park
