"""The task tree shared by the functional and the graph engines.

Tasks form trees. A root is an entrypoint (functional API) or a node of the
current superstep (Graph API); any held task may call child tasks. A child's
id derives from its parent's id and the call's position, so a replay computes
the same ids and finds the recorded results (the journal) by position.
Results, errors, interrupts and resume values are pending writes on the
checkpoint the roots run from:

    __return__     idx 0   the task's result (first recorded wins)
    __error__      idx -1  the task's last error
    __interrupt__  idx -3  the task's latest interrupt
    __resume__     idx -4  the task's resume values, by interrupt index
    __subgraph__   idx -5  the namespace of the subgraph run the task drives
    __timer__      idx -6  a timer's due time (a durable sleep, see `sleeping`)
    __timed_out__  idx -7  the task's interrupts, by index, that timed out with
                           no default (interrupt() raises there)

A timer is a child of the entrypoint that sleeps, named "__sleep__" at the
sleep's call position; its `__return__` (null) records that it fired, so a
replay passes the sleep at once.

The engines do no I/O and read no clock: ids are derived, and jitter samples,
new checkpoint ids and times are passed in.
"""

from __future__ import annotations

import abc
import enum
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from cairn_server.domain import (
    ErrorRecord,
    InterruptRecord,
    Json,
    PendingWrite,
    RetryPolicy,
    StreamMode,
    TaskTimeouts,
)
from cairn_server.engine.checkpoints import END
from cairn_server.engine.decisions import (
    Cancel,
    Decision,
    Deliver,
    Dispatch,
    Emit,
    Finish,
    JournalEntry,
    Record,
    RetryLater,
)
from cairn_server.errors import error_for
from cairn_server.ids import derive_id

RETURN, ERROR, INTERRUPT, RESUME = "__return__", "__error__", "__interrupt__", "__resume__"
SUBGRAPH, TIMER, TIMED_OUT = "__subgraph__", "__timer__", "__timed_out__"
WRITE_IDX = {
    RETURN: 0,
    ERROR: -1,
    INTERRUPT: -3,
    RESUME: -4,
    SUBGRAPH: -5,
    TIMER: -6,
    TIMED_OUT: -7,
}
NON_DETERMINISTIC = "NonDeterministicError"
MAX_LOSSES = 10
"""How many times an attempt of a task may go back to the queue because the
worker holding it went away (its stream ended) before it fails with
WorkerLostError, not retried: a task that takes its worker down each time
(a crash, a report over the stream's message limit) would otherwise be
handed out for ever. Restarting workers one by one costs a held task one
loss each."""
_COMPACT = json.JSONEncoder(separators=(",", ":"))
SLEEP = "__sleep__"
"""The name of a timer in the task tree and in journals (TaskSleeping)."""


class TaskStatus(enum.StrEnum):
    NEW = "new"  # known from writes, not (re)started in this run
    QUEUED = "queued"  # waiting for a worker
    RUNNING = "running"  # held by a worker
    RETRY_WAIT = "retry_wait"
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # stopped at its own interrupt()
    SUSPENDED = "suspended"  # stopped because an awaited child is interrupted, or to sleep
    SLEEPING = "sleeping"  # a timer that is not due yet
    CANCELLED = "cancelled"

    @property
    def in_flight(self) -> bool:
        return self in (TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.RETRY_WAIT)


def root_task_id(thread_id: str, checkpoint_id: str) -> str:
    return derive_id(thread_id, checkpoint_id, "entrypoint")


def child_task_id(parent_id: str, index: int) -> str:
    return derive_id(parent_id, index)


def interrupt_id(task_id: str, index: int) -> str:
    return derive_id(task_id, "interrupt", index)


@dataclass(slots=True, frozen=True)
class InterruptTimeout:
    """When the service answers an interrupt itself (the timer clock), and
    with what: the default, or (without one) an InterruptTimeoutError."""

    at: float
    has_default: bool = False
    default: Json = None


@dataclass(slots=True)
class TaskNode:
    id: str
    name: str
    parent_id: str  # "" for a root
    index: int  # position among the parent's calls, or among the roots
    input: Json = None
    path: tuple[str, ...] = ()
    status: TaskStatus = TaskStatus.NEW
    attempt: int = 1
    retry_policy: RetryPolicy | None = None
    timeouts: TaskTimeouts | None = None  # the call's own (ScheduleTask.timeouts)
    result: Json = None
    error: ErrorRecord | None = None
    interrupt: InterruptRecord | None = None
    resume: list[Json] = field(default_factory=list)
    timed_out: list[int] = field(default_factory=list)  # see TIMED_OUT
    children: dict[int, str] = field(default_factory=dict)
    label: str = ""  # what streams show, when not the task name (a graph node)
    wake_at: float | None = None  # a timer's due time, on the service's timer clock
    losses: int = 0  # times this attempt went back to the queue with its worker (MAX_LOSSES)

    @property
    def pending_interrupt(self) -> InterruptRecord | None:
        """The interrupt still waiting for a resume value, if any."""
        if self.interrupt is not None and self.interrupt.index >= len(self.resume):
            return self.interrupt
        return None

    @property
    def is_root(self) -> bool:
        return self.parent_id == ""

    @property
    def task_path(self) -> str:
        return _COMPACT.encode([self.parent_id, self.index, self.name])

    def write(self, channel: str, value: Json) -> PendingWrite:
        return PendingWrite(self.id, WRITE_IDX[channel], channel, value, self.task_path)


class TaskTree(abc.ABC):
    """Tasks of one run on one checkpoint, and what workers report of them.

    Subclasses decide what the roots are, what a root's result means
    (`_root_completed`) and when the run or the step is over (`_settle`).
    """

    def __init__(self) -> None:
        self.tasks: dict[str, TaskNode] = {}
        self.finished = False

    # --- reading ------------------------------------------------------------

    def pending_interrupts(self) -> list[InterruptRecord]:
        return [i for t in self.tasks.values() if (i := t.pending_interrupt) is not None]

    def journal(self, task: TaskNode) -> tuple[JournalEntry, ...]:
        entries = []
        for index in sorted(task.children):
            child = self.tasks[task.children[index]]
            if child.status is TaskStatus.DONE:
                entries.append(JournalEntry(index, child.name, child.id, child.result))
        return tuple(entries)

    def sleeping_timers(self) -> list[TaskNode]:
        """Timers that are not due yet, the earliest first."""
        timers = [t for t in self.tasks.values() if t.status is TaskStatus.SLEEPING]
        return sorted(timers, key=lambda t: (t.wake_at or 0.0, t.id))

    def holds(self, task_id: str) -> bool:
        task = self.tasks.get(task_id)
        return task is not None and task.status is TaskStatus.RUNNING

    def namespace_of(self, task_id: str) -> tuple[str, ...]:
        """The stream namespace of a held task's chunks."""
        return self.tasks[task_id].path

    # --- resuming -------------------------------------------------------------

    def resolve_resume(
        self,
        *,
        value: Json = None,
        by_id: dict[str, Json] | None = None,
        timed_out: Collection[str] = (),
    ) -> list[Decision]:
        """Answer pending interrupts; raises a ServiceError when the command
        does not fit them. Call before `start`. The interrupts named in
        `timed_out` are answered by their timeout (the service's): those
        without a default raise InterruptTimeoutError where they were made."""
        pending = {i.id: i for i in self.pending_interrupts()}
        if not pending:
            raise error_for("NO_PENDING_INTERRUPT", "the thread has no pending interrupt")
        if by_id is None:
            if len(pending) > 1:
                raise error_for(
                    "AMBIGUOUS_RESUME",
                    f"{len(pending)} interrupts are pending; resume them by id",
                    interrupt_ids=",".join(pending),
                )
            by_id = {next(iter(pending)): value}
        for key in by_id:
            if key not in pending:
                raise error_for(
                    "INTERRUPT_NOT_FOUND",
                    f"no pending interrupt has id {key!r}",
                    interrupt_id=key,
                )
        return self._answer(by_id, timed_out)

    def _answer(self, by_id: dict[str, Json], timed_out: Collection[str] = ()) -> list[Decision]:
        """Record resume values for pending interrupts (their ids are checked)."""
        pending = {i.id: i for i in self.pending_interrupts()}
        writes = []
        for key, resume_value in by_id.items():
            interrupt = pending[key]
            task = self.tasks[interrupt.task_id]
            if key in timed_out and not interrupt.has_default:
                task.timed_out.append(len(task.resume))
                writes.append(task.write(TIMED_OUT, list(task.timed_out)))
            task.resume.append(resume_value)
            writes.append(task.write(RESUME, list(task.resume)))
        return [Record(tuple(writes))]

    # --- events from workers ----------------------------------------------------

    def schedule(
        self,
        parent_id: str,
        index: int,
        name: str,
        input: Json,
        retry_policy: RetryPolicy | None,
        *,
        local: bool = False,
        timeouts: TaskTimeouts | None = None,
    ) -> list[Decision]:
        """A held task calls a child task or entrypoint at position `index`.
        With `local`, the calling worker runs the child itself (attempt 1, no
        journal, no resume values): accepted, as a Dispatch with local=True,
        when the child would start just so; otherwise the call proceeds as a
        plain one."""
        parent = self.tasks[parent_id]
        child_id = parent.children.get(index)
        if child_id is None:
            child_id = child_task_id(parent_id, index)
            parent.children[index] = child_id
            self.tasks[child_id] = TaskNode(
                child_id,
                name,
                parent_id,
                index,
                input=input,
                path=self._child_path(parent),
                retry_policy=retry_policy,
            )
        child = self.tasks[child_id]
        if child.name != name:
            error = non_deterministic(parent, index, name, child.name)
            return [Deliver(parent_id, index, child_id, error=error)]
        status = child.status
        if status is TaskStatus.DONE:
            return [Deliver(parent_id, index, child_id, has_result=True, result=child.result)]
        if status.in_flight:
            return []  # the outcome is delivered when it arrives
        if status is TaskStatus.FAILED:
            assert child.error is not None
            return [Deliver(parent_id, index, child_id, error=child.error)]
        if status in (TaskStatus.INTERRUPTED, TaskStatus.SUSPENDED):
            interrupt = self._first_pending_interrupt(child)
            if interrupt is not None:
                return [Deliver(parent_id, index, child_id, interrupt=interrupt)]
        child.input = input
        child.retry_policy = retry_policy
        child.timeouts = timeouts
        child.status = TaskStatus.QUEUED
        child.attempt = 1
        if local and not child.resume and not child.children:
            child.status = TaskStatus.RUNNING
            return [self._dispatch(child, local=True)]
        return self._start(child)

    def completed(self, task_id: str, result: Json, save: Json, has_save: bool) -> list[Decision]:
        task = self.tasks[task_id]
        if task.status is not TaskStatus.RUNNING:
            return []  # a duplicate after a re-dispatch: the first result won
        task.status = TaskStatus.DONE
        task.result = result
        task.error = None
        if task.is_root:
            return self._root_completed(task, save, has_save) + self._settle()
        decisions: list[Decision] = [
            Record((task.write(RETURN, result),)),
            Emit(StreamMode.TASKS, self._task_result(task), task.path),
            Emit(StreamMode.UPDATES, {task.name: result}, task.path),
        ]
        return decisions + self._deliver_to_parent(task) + self._settle()

    def failed(self, task_id: str, error: ErrorRecord, jitter: float) -> list[Decision]:
        """`jitter` is a sample from [0, 1) used when the policy asks for it."""
        task = self.tasks[task_id]
        if task.status is not TaskStatus.RUNNING:
            return []
        policy = task.retry_policy
        if error.retryable and policy is not None and task.attempt < policy.max_attempts:
            task.status = TaskStatus.RETRY_WAIT
            task.error = error
            delay = min(
                policy.max_interval,
                policy.initial_interval * policy.backoff_factor ** (task.attempt - 1),
            )
            if policy.jitter:
                delay += jitter
            return [RetryLater(task.id, delay, task.name, task.path)]
        task.status = TaskStatus.FAILED
        task.error = error
        decisions: list[Decision] = [
            Record((task.write(ERROR, error.to_json()),)),
            Emit(StreamMode.TASKS, self._task_result(task), task.path),
        ]
        decisions.extend(self._deliver_to_parent(task))
        return decisions + self._settle()

    def interrupted(
        self, task_id: str, index: int, value: Json, timeout: InterruptTimeout | None = None
    ) -> list[Decision]:
        """A held task stopped at its interrupt `index`; with a `timeout`,
        the service answers it then unless a resume came first."""
        task = self.tasks[task_id]
        if task.status is not TaskStatus.RUNNING:
            return []
        task.status = TaskStatus.INTERRUPTED
        task.interrupt = InterruptRecord(
            interrupt_id(task.id, index), value, task.id, task.name, index
        )
        if timeout is not None:
            task.interrupt.timeout_at = timeout.at
            task.interrupt.has_default = timeout.has_default
            task.interrupt.default = timeout.default
        decisions: list[Decision] = [
            Record((task.write(INTERRUPT, task.interrupt.to_json()),)),
            Emit(StreamMode.TASKS, self._task_result(task), task.path),
            Emit(
                StreamMode.UPDATES, {"__interrupt__": [{"value": value, "id": task.interrupt.id}]}
            ),
        ]
        decisions.extend(self._deliver_to_parent(task))
        return decisions + self._settle()

    def suspended(self, task_id: str) -> list[Decision]:
        """A held task stopped because a child it awaited is interrupted."""
        task = self.tasks[task_id]
        if task.status is not TaskStatus.RUNNING:
            return []
        task.status = TaskStatus.SUSPENDED
        decisions = self._deliver_to_parent(task)
        return decisions + self._settle()

    def sleeping(self, task_id: str, index: int, due: float) -> list[Decision]:
        """A held task sleeps: its call at `index` is a timer due at `due`
        (the service's timer clock), unless one is recorded there already,
        whose due time stands. The task stops, as at an interrupt; once
        nothing else runs the run parks (see the engines' `_settle`)."""
        task = self.tasks[task_id]
        if task.status is not TaskStatus.RUNNING:
            return []
        if not self._may_sleep(task):
            error = ErrorRecord(
                "SleepNotAllowedError",
                f"{task.name!r} is not the run's entrypoint: only an entrypoint can sleep",
                retryable=False,
            )
            return self.failed(task_id, error, 0.0)
        decisions: list[Decision] = []
        timer_id = task.children.get(index)
        if timer_id is None:
            timer = TaskNode(
                child_task_id(task_id, index),
                SLEEP,
                task_id,
                index,
                path=self._child_path(task),
                status=TaskStatus.SLEEPING,
                wake_at=due,
            )
            task.children[index] = timer.id
            self.tasks[timer.id] = timer
            decisions.append(Record((timer.write(TIMER, {"wake_at": due}),)))
        else:
            timer = self.tasks[timer_id]
            if timer.name != SLEEP:
                return self.failed(task_id, non_deterministic(task, index, SLEEP, timer.name), 0.0)
            if timer.status is TaskStatus.DONE:  # the worker's journal missed it
                task.status = TaskStatus.QUEUED
                return [self._dispatch(task)]
        task.status = TaskStatus.SUSPENDED
        return decisions + self._settle()

    def wake_timers(self, now: float) -> list[Decision]:
        """Fire the timers due at `now`: their sleeps return when their
        tasks are replayed. Call before `start`."""
        writes = []
        for timer in self.sleeping_timers():
            if timer.wake_at is not None and timer.wake_at > now:
                break
            timer.status, timer.result = TaskStatus.DONE, None
            writes.append(timer.write(RETURN, None))
        return [Record(tuple(writes))] if writes else []

    def _may_sleep(self, task: TaskNode) -> bool:
        """Whether `task` may start a timer (the functional engine's root)."""
        return False

    def lost(self, task_id: str) -> list[Decision]:
        """The worker holding the task is gone: dispatch it again, same
        attempt; the MAX_LOSSES-th time the task fails instead."""
        task = self.tasks.get(task_id)
        if task is None or task.status is not TaskStatus.RUNNING:
            return []
        task.losses += 1
        if task.losses >= MAX_LOSSES:
            error = ErrorRecord(
                "WorkerLostError",
                f"task {task.name!r} went to a worker {task.losses} times and each time the"
                " worker went away before the task reported (it crashed, or sent a message"
                " larger than the service accepts); it is not dispatched again",
                retryable=False,
            )
            return self.failed(task_id, error, jitter=0.0)
        task.status = TaskStatus.QUEUED
        return [self._dispatch(task)]

    def retry_due(self, task_id: str) -> list[Decision]:
        task = self.tasks[task_id]
        if task.status is not TaskStatus.RETRY_WAIT:
            return []
        task.status = TaskStatus.QUEUED
        task.attempt += 1
        task.losses = 0
        return [self._dispatch(task)]

    def dispatched(self, task_id: str) -> None:
        """A worker now holds the task."""
        task = self.tasks[task_id]
        if task.status is TaskStatus.QUEUED:
            task.status = TaskStatus.RUNNING

    def cancel(self) -> list[Decision]:
        running = [t.id for t in self.tasks.values() if t.status.in_flight]
        for task_id in running:
            self.tasks[task_id].status = TaskStatus.CANCELLED
        self.finished = True
        return [Cancel(tuple(running)), Finish("cancelled")]

    # --- for subclasses ---------------------------------------------------------

    @abc.abstractmethod
    def _root_completed(self, task: TaskNode, save: Json, has_save: bool) -> list[Decision]:
        """Decisions for a root's result (its status is DONE already)."""

    @abc.abstractmethod
    def _settle(self) -> list[Decision]:
        """Decisions once tasks stopped: finish, or go on to the next step."""

    # --- internals ----------------------------------------------------------------

    def _restore(self, writes: Iterable[PendingWrite]) -> None:
        """Rebuild the task tree from the checkpoint's pending writes."""
        by_task: dict[str, list[PendingWrite]] = {}
        for write in writes:
            by_task.setdefault(write.task_id, []).append(write)
        for task_id, task_writes in by_task.items():
            if task_id not in self.tasks:
                parent_id, index, name = json.loads(task_writes[0].task_path)
                self.tasks[task_id] = TaskNode(task_id, name, parent_id, index)
            task = self.tasks[task_id]
            for write in task_writes:
                if write.channel == RETURN:
                    task.status, task.result = TaskStatus.DONE, write.value
                elif write.channel == ERROR:
                    task.error = ErrorRecord.from_json(write.value)
                elif write.channel == INTERRUPT:
                    task.interrupt = InterruptRecord.from_json(write.value)
                elif write.channel == RESUME:
                    task.resume = list(write.value)
                elif write.channel == TIMER:
                    task.wake_at = float(write.value["wake_at"])
                elif write.channel == TIMED_OUT:
                    task.timed_out = [int(i) for i in write.value]
            # An error is shown but not replayed: a new run executes the task again.
            if task.status is not TaskStatus.DONE and task.interrupt is not None:
                task.status = TaskStatus.INTERRUPTED
            elif task.status is not TaskStatus.DONE and task.wake_at is not None:
                task.status = TaskStatus.SLEEPING
        for task in self.tasks.values():
            parent = self.tasks.get(task.parent_id)
            if parent is not None:
                parent.children[task.index] = task.id
        for root in [t for t in self.tasks.values() if t.is_root]:
            for task in self._walk(root):
                parent = self.tasks.get(task.parent_id)
                if parent is not None:
                    task.path = self._child_path(parent)

    def _walk(self, task: TaskNode) -> Iterable[TaskNode]:
        yield task
        for index in sorted(task.children):
            yield from self._walk(self.tasks[task.children[index]])

    def _child_path(self, parent: TaskNode) -> tuple[str, ...]:
        """Namespace of a child: the tasks above it, excluding the root."""
        if parent.is_root:
            return ()
        return (*parent.path, f"{parent.name}:{parent.id}")

    def _first_pending_interrupt(self, task: TaskNode) -> InterruptRecord | None:
        return next((i for t in self._walk(task) if (i := t.pending_interrupt) is not None), None)

    def _start(self, task: TaskNode) -> list[Decision]:
        """Run a queued task: on a worker, unless a subclass runs it itself."""
        return [self._dispatch(task)]

    def _dispatch(self, task: TaskNode, *, local: bool = False) -> Dispatch:
        return Dispatch(
            task_id=task.id,
            name=task.name,
            attempt=task.attempt,
            input=task.input,
            journal=self.journal(task),
            first_fresh_call=max(task.children, default=-1) + 1,
            resume=tuple(task.resume),
            timed_out=tuple(task.timed_out),
            path=task.path,
            is_root=task.is_root,
            label=task.label or task.name,
            local=local,
            timeouts=task.timeouts,
        )

    def _deliver_to_parent(self, task: TaskNode) -> list[Decision]:
        parent = self.tasks.get(task.parent_id)
        if parent is None or parent.status is not TaskStatus.RUNNING:
            return []  # the parent reads the outcome when it is replayed
        if task.status is TaskStatus.DONE:
            return [Deliver(parent.id, task.index, task.id, has_result=True, result=task.result)]
        if task.status is TaskStatus.FAILED:
            return [Deliver(parent.id, task.index, task.id, error=task.error)]
        interrupt = self._first_pending_interrupt(task)
        if interrupt is None:
            return []
        return [Deliver(parent.id, task.index, task.id, interrupt=interrupt)]

    def task_started(self, task_id: str) -> dict[str, Json] | None:
        """The `tasks` chunk of a dispatched task, or None to show nothing."""
        task = self.tasks[task_id]
        return {
            "id": task.id,
            "name": task.label or task.name,
            "input": task.input,
            "triggers": ["__pregel_push"],
        }

    def _task_result(self, task: TaskNode) -> dict[str, Json]:
        """A `tasks` result chunk, as LangGraph's: `result` maps the channels
        the task wrote to their values (a task's return value is written to
        __return__, an entrypoint's output to __end__); empty unless the task
        finished."""
        interrupts = [interrupt_chunk(i)] if (i := task.pending_interrupt) else []
        result: dict[str, Json] = {}
        if task.status is TaskStatus.DONE:
            result = {END if task.is_root else RETURN: task.result}
        return {
            "id": task.id,
            "name": task.label or task.name,
            "error": task.error.message
            if task.status is TaskStatus.FAILED and task.error
            else None,
            "result": result,
            "interrupts": interrupts,
        }


def non_deterministic(parent: TaskNode, index: int, name: str, recorded: str) -> ErrorRecord:
    """A replay made call `index` of `parent` to `name` where `recorded` was
    made (never retried: a replay makes it again)."""
    return ErrorRecord(
        NON_DETERMINISTIC,
        f"call {index} of {parent.name!r} is {name!r} in this replay but "
        f"{recorded!r} was recorded at that position",
    )


def interrupt_chunk(interrupt: InterruptRecord) -> dict[str, Json]:
    """An interrupt as stream chunks show it: the fields of LangGraph's
    `Interrupt` (Cairn has no response schemas)."""
    return {"value": interrupt.value, "id": interrupt.id, "response_schema": None}
