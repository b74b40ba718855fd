"""The execution of one assignment on a worker, and the functions user code
calls inside it: `interrupt`, `get_stream_writer`, `get_previous_state`,
`get_store`.

A task or entrypoint body runs with an `Execution` in a context variable.
Every child call gets the next position; a position the journal already
holds returns its recorded result at once, anything else is scheduled through
the service. Sync bodies run in a thread, so everything here is thread-safe:
messages to the service are queued on the event loop in the order they are
made.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import math
import threading
import time
from collections.abc import Callable, Generator
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from cairn import _messages
from cairn._errors import (
    InterruptTimeoutError,
    NonDeterministicError,
    TaskFailedError,
    TaskTimeoutError,
)
from cairn._ids import child_task_id
from cairn._types import Interrupt, RetryPolicy, TaskTimeouts
from cairn._values import struct_to_json, to_json, to_value
from cairn.v1 import errors_pb2, run_pb2, worker_service_pb2

if TYPE_CHECKING:
    from cairn._store import Store

pb = worker_service_pb2
StreamModePb = run_pb2.StreamMode.ValueType


NO_DEFAULT: Any = object()
"""`interrupt`'s default when none is given: a timeout raises instead."""


class GraphInterrupt(BaseException):
    """Raised by `interrupt()` to pause the run. Derives from BaseException so
    that `except Exception` in user code cannot swallow it."""

    def __init__(
        self, value: Any, index: int, *, timeout: float | None = None, default: Any = NO_DEFAULT
    ) -> None:
        super().__init__(value)
        self.value = value
        self.index = index
        self.timeout = timeout
        self.default = default


SLEEP = "__sleep__"
"""A timer's name in journals (TaskSleeping in the protocol)."""


class Sleep(BaseException):
    """Raised by `sleep()` to stop the entrypoint until its timer is due: the
    worker reports TaskSleeping. A BaseException, as GraphInterrupt."""

    def __init__(
        self, index: int, *, duration: float | None = None, wake_time: float | None = None
    ) -> None:
        super().__init__(index)
        self.index = index
        self.duration = duration
        self.wake_time = wake_time


class ChildInterrupted(BaseException):
    """Raised where a workflow awaits a task that is interrupted: the workflow
    stops here and is replayed when the run is resumed."""

    def __init__(self, interrupt: Interrupt) -> None:
        super().__init__(interrupt.value)
        self.interrupt = interrupt


class Abandoned(BaseException):
    """Raised in a body whose execution was withdrawn (the run was cancelled,
    or the worker lost its connection), so that sync code blocked on a task
    result unwinds. The service runs the work again elsewhere if needed."""


class TaskFuture:
    """The pending result of a task call: `await` it in async code, or call
    `.result()` in sync code, as with LangGraph's task futures."""

    __slots__ = ("_body", "_future")

    def __init__(
        self, future: concurrent.futures.Future[Any], body: SyncBody | None = None
    ) -> None:
        self._future = future
        self._body = body

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.wrap_future(self._future).__await__()

    def result(self, timeout: float | None = None) -> Any:
        """Block until the task's result is available (sync code only). A
        call this worker runs itself and has not started yet runs here, in
        the calling thread."""
        if self._body is not None:
            self._body.claim()
        return self._future.result(timeout)

    def done(self) -> bool:
        return self._future.done()


class SyncBody:
    """A plain function's call with an execution current, run once by the
    first thread that claims it: a thread of the worker's pool, or the thread
    blocked on its result (`TaskFuture.result`), which then runs it instead
    of waiting for a pool thread to wake up and finish it."""

    __slots__ = ("_call", "_claimed", "_context", "_lock", "future")

    def __init__(self, execution: Execution, fn: Callable[[], Any]) -> None:
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._call = fn
        self._context = contextvars.copy_context()
        self._context.run(_current.set, execution)
        self._context.run(_messages.attach, execution)
        self._lock = threading.Lock()
        self._claimed = False

    @property
    def claimed(self) -> bool:
        return self._claimed

    def claim(self) -> None:
        """Run the call here, unless another thread claimed it or its
        execution was withdrawn first; never raises."""
        with self._lock:
            if self._claimed:
                return
            self._claimed = True
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self._context.run(self._call)
        except BaseException as error:  # GraphInterrupt and Abandoned included
            self.future.set_exception(error)
        else:
            self.future.set_result(result)


class LocalCalls(Protocol):
    """Runs calls on this worker instead of through the service (see
    ScheduleTask.local in the protocol)."""

    def serves(self, parent: Execution, name: str) -> bool:
        """Whether `parent` may run a call of `name` here."""

    def start(self, parent: Execution, schedule: pb.ScheduleTask) -> Execution:
        """Start the call; callable from any thread."""


_current: contextvars.ContextVar[Execution | None] = contextvars.ContextVar(
    "cairn_execution", default=None
)


def current() -> Execution:
    execution = _current.get()
    if execution is None:
        raise RuntimeError("this can only be called inside a task or an entrypoint")
    return execution


class Execution:
    """One assignment running on this worker."""

    def __init__(
        self,
        assignment: pb.TaskAssignment,
        *,
        loop: asyncio.AbstractEventLoop,
        send: Callable[[pb.ConnectRequest], None],
        local: LocalCalls | None = None,
        detached: pb.ScheduleTask | None = None,
    ) -> None:
        self.assignment = assignment
        self.task_id = assignment.task_id
        self.previous = to_json(assignment.previous) if assignment.HasField("previous") else None
        self._journal = {entry.index: entry for entry in assignment.journal}
        self._resume = [to_json(v) for v in assignment.resume]
        self._timed_out = set(assignment.timed_out)
        self._loop = loop
        self._send = send
        self._lock = threading.Lock()
        self._next_call = 0
        self._next_interrupt = 0
        self._pending: dict[int, concurrent.futures.Future[Any]] = {}
        self._abandoned = False
        self._local = local
        # A local call the service does not know yet: the ScheduleTask that
        # announces it once it needs the service, or reports its outcome.
        self._detached = detached
        self._local_children: list[Execution] = []
        self.body: SyncBody | None = None  # a local call's body, bound by its caller
        self.store: Store | None = None  # the memory store, over the worker's connection
        self.node = assignment.name  # its name in stream mode messages (a graph's node name)
        self.heartbeats = _Heartbeats(self, assignment)

    # --- messages to the service ------------------------------------------------

    def send(self, message: pb.ConnectRequest) -> None:
        """Queue a message on the event loop; callable from any thread."""
        self._loop.call_soon_threadsafe(self._send, message)

    def on_loop(self, fn: Callable[[Execution], None], execution: Execution) -> None:
        """Call `fn(execution)` on the event loop; callable from any thread."""
        self._loop.call_soon_threadsafe(fn, execution)

    def local_call(self, schedule: pb.ScheduleTask) -> Execution:
        """The execution of call `schedule` of this task run here, detached:
        attempt 1 of the child id the service derives, with no journal."""
        source = self.assignment
        assignment = pb.TaskAssignment(
            task_id=child_task_id(self.task_id, schedule.index),
            name=schedule.name,
            kind=pb.TASK_KIND_TASK,
            run_id=source.run_id,
            thread_id=source.thread_id,
            checkpoint_id=source.checkpoint_id,
            attempt=1,
            input=schedule.input,
            stream_messages=source.stream_messages,
        )
        child = Execution(assignment, loop=self._loop, send=self._send, detached=schedule)
        child.store = self.store
        return child

    def attach(self) -> None:
        """A detached local call needs the service: announce it as running
        here, so that its messages are about a task the service knows."""
        with self._lock:
            schedule, self._detached = self._detached, None
            if schedule is not None:
                schedule.local_running = True
                self.send(pb.ConnectRequest(schedule=schedule))

    def report_locally(self, fill: Callable[[pb.ScheduleTask], None]) -> bool:
        """Send a detached local call's outcome in one ScheduleTask (`fill`
        sets it); False when the call is attached and reports as usual."""
        with self._lock:
            schedule, self._detached = self._detached, None
            if schedule is None:
                return False
            fill(schedule)
            self.send(pb.ConnectRequest(schedule=schedule))
            return True

    def attach_children(self) -> None:
        """Before this task reports its own outcome: local calls it did not
        wait for are announced first, so the service knows them."""
        for child in self._local_children:
            child.attach()

    # --- what user code calls -------------------------------------------------------

    def call(
        self,
        name: str,
        input: Any,
        retry_policy: RetryPolicy | None,
        timeouts: TaskTimeouts | None = None,
    ) -> TaskFuture:
        self.attach()
        with self._lock:
            if self._abandoned:
                raise Abandoned()
            index = self._next_call
            self._next_call += 1
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        entry = self._recorded(index, name)
        if entry is not None:
            future.set_result(to_json(entry.result))
            return TaskFuture(future)
        schedule = pb.ScheduleTask(
            parent_task_id=self.task_id,
            index=index,
            name=name,
            input=to_value(input, field=f"input of {name}"),
        )
        if retry_policy is not None:
            schedule.retry_policy.CopyFrom(retry_policy._to_proto())
        if timeouts is not None:
            schedule.timeouts.CopyFrom(timeouts._to_proto())
        with self._lock:
            self._pending[index] = future
        fresh = index >= self.assignment.first_fresh_call
        # A call the service may take back on a timeout runs through it.
        local = self._local is not None and not (timeouts is not None and timeouts._holds_worker)
        if fresh and local and self._local is not None and self._local.serves(self, name):
            child = self._local.start(self, schedule)
            self._local_children.append(child)
            return TaskFuture(future, child.body)
        self.send(pb.ConnectRequest(schedule=schedule))
        return TaskFuture(future)

    def _recorded(self, index: int, name: str) -> pb.JournalEntry | None:
        """The journal's entry for call `index`, checked to be a call of
        `name`; None when the call has no history."""
        entry = self._journal.get(index)
        if entry is not None and entry.name != name:
            raise NonDeterministicError(
                f"call {index} of {self.assignment.name!r} is {name!r} in this replay "
                f"but {entry.name!r} was recorded at that position"
            )
        return entry

    def sleep(self, *, duration: float | None = None, wake_time: float | None = None) -> None:
        """Pass a sleep the journal records, or stop the entrypoint here to
        sleep (see `cairn.sleep`)."""
        if self.assignment.kind != pb.TASK_KIND_ENTRYPOINT:
            raise RuntimeError(
                "cairn.sleep() works only in an entrypoint; a task or graph node cannot sleep"
            )
        with self._lock:
            if self._abandoned:
                raise Abandoned()
            index = self._next_call
            self._next_call += 1
        if self._recorded(index, SLEEP) is None:
            raise Sleep(index, duration=duration, wake_time=wake_time)

    def interrupt(
        self, value: Any, *, timeout: float | None = None, default: Any = NO_DEFAULT
    ) -> Any:
        with self._lock:
            index = self._next_interrupt
            self._next_interrupt += 1
        if index < len(self._resume):
            if index in self._timed_out:
                raise InterruptTimeoutError(
                    f"interrupt {index} of {self.assignment.name!r} timed out with no answer"
                )
            return self._resume[index]
        self.attach()
        raise GraphInterrupt(value, index, timeout=timeout, default=default)

    def write(
        self, data: Any, mode: run_pb2.StreamMode.ValueType = run_pb2.STREAM_MODE_CUSTOM
    ) -> None:
        self.attach()
        chunk = pb.TaskStreamChunk(
            task_id=self.task_id, mode=mode, data=to_value(data, field="stream chunk")
        )
        self.send(pb.ConnectRequest(chunk=chunk))

    def heartbeat(self, details: Any) -> None:
        with self._lock:
            if self._abandoned:
                raise Abandoned()
        self.heartbeats.beat(details)

    @property
    def abandoned(self) -> bool:
        return self._abandoned

    # --- outcomes of child calls ----------------------------------------------------

    def abandon(self) -> None:
        """Withdrawn: every pending and future call raises Abandoned."""
        with self._lock:
            self._abandoned = True
            pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(Abandoned())

    def deliver(self, outcome: pb.ChildOutcome) -> None:
        with self._lock:
            future = self._pending.pop(outcome.index, None)
        if future is None or future.done():
            return
        kind = outcome.WhichOneof("outcome")
        if kind == "result":
            future.set_result(to_json(outcome.result))
        elif kind == "error":
            error = outcome.error
            if error.type == "NonDeterministicError":
                future.set_exception(NonDeterministicError(error.message))
            else:
                failure = _task_failure(error)
                future.set_exception(failure)
        else:
            interrupt = Interrupt._from_proto(outcome.interrupted.interrupt)
            future.set_exception(ChildInterrupted(interrupt))

    # --- running the body -------------------------------------------------------------

    async def run(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        threads: concurrent.futures.Executor,
    ) -> Any:
        """Call `fn` with this execution current: coroutines on the loop,
        plain functions as a SyncBody claimed by a thread of `threads`."""
        if asyncio.iscoroutinefunction(fn):
            token = _current.set(self)
            streaming = _messages.attach(self)
            try:
                return await fn(*args, **kwargs)
            finally:
                _messages.detach(streaming)
                _current.reset(token)
        self.body = SyncBody(self, functools.partial(fn, *args, **kwargs))
        return await self.run_body(threads)

    async def run_body(self, threads: concurrent.futures.Executor) -> Any:
        """Run `self.body` on a thread of `threads`, unless a thread claimed
        it already (see SyncBody)."""
        body = self.body
        assert body is not None
        if body.future.done():
            return body.future.result()
        if not body.claimed:
            threads.submit(body.claim)
        return await asyncio.wrap_future(body.future)


class _Heartbeats:
    """The TaskHeartbeat messages of one execution: at most one every third
    of its heartbeat timeout, the latest details kept for the next one (sent
    when that interval ends). Nothing at all for a task without a heartbeat
    timeout, unless it gives details (for its next attempt)."""

    __slots__ = (
        "_closed",
        "_details",
        "_execution",
        "_has_details",
        "_interval",
        "_next",
        "_required",
        "_waiting",
    )

    def __init__(self, execution: Execution, assignment: pb.TaskAssignment) -> None:
        self._execution = execution
        timeout = assignment.timeouts.heartbeat_timeout.ToTimedelta().total_seconds()
        self._required = timeout > 0
        self._interval = timeout / 3 if self._required else _DETAILS_INTERVAL
        self._next = 0.0  # when the next heartbeat may go (time.monotonic)
        self._waiting = False  # a heartbeat is held until `_next`
        self._has_details = False
        self._details: Any = None
        self._closed = False

    def close(self) -> None:
        """The execution reported its outcome: a held heartbeat is dropped."""
        with self._execution._lock:
            self._closed = True

    def beat(self, details: Any) -> None:
        execution = self._execution
        if details is None and not self._required:
            return  # no heartbeat timeout: nothing to say
        value = to_value(details) if details is not None else None
        with execution._lock:
            if value is not None:
                self._has_details, self._details = True, value
            now = time.monotonic()
            if self._waiting:
                return
            if now < self._next:
                self._waiting = True
                delay = self._next - now
                execution._loop.call_soon_threadsafe(
                    lambda: execution._loop.call_later(delay, self._flush)
                )
                return
            message = self._take(now)
        execution.send(message)

    def _flush(self) -> None:
        execution = self._execution
        with execution._lock:
            self._waiting = False
            if execution._abandoned or self._closed:
                return
            message = self._take(time.monotonic())
        execution.send(message)

    def _take(self, now: float) -> pb.ConnectRequest:
        self._next = now + self._interval
        beat = pb.TaskHeartbeat(task_id=self._execution.task_id)
        if self._has_details:
            beat.details.CopyFrom(self._details)
            self._has_details, self._details = False, None
        return pb.ConnectRequest(heartbeat=beat)


_DETAILS_INTERVAL = 10.0
"""Without a heartbeat timeout, details go at most this often (seconds)."""


def _task_failure(error: errors_pb2.TaskError) -> TaskFailedError:
    """The exception a workflow sees for a child's final error."""
    if error.type == "TaskTimeoutError":
        details = struct_to_json(error.details) if error.HasField("details") else {}
        return TaskTimeoutError(
            error.message,
            timeout=str(details.get("timeout", "")),
            task_name=str(details.get("task_name", "")),
            traceback=error.traceback,
        )
    return TaskFailedError(error.type, error.message, traceback=error.traceback)


def heartbeat(details: Any = None) -> None:
    """Tell the service that the current task is alive, as Temporal's
    `activity.heartbeat`. A task whose `TaskTimeouts` has a `heartbeat`
    timeout must call it at least that often, or its worker loses it to
    another worker. `details` (JSON) reach the next attempt of the task
    through `get_heartbeat_details()`, so that it can continue where this one
    got to. Cheap to call often: messages are spaced by a third of the
    timeout, and without a heartbeat timeout a call without details does
    nothing. Raises (a BaseException, so that the task unwinds) once the
    service has withdrawn the attempt.

        @task(timeouts=TaskTimeouts(heartbeat=10))
        def crawl(urls: list[str]) -> int:
            start = get_heartbeat_details() or 0
            for i in range(start, len(urls)):
                fetch(urls[i])
                heartbeat(i + 1)
            return len(urls)
    """
    current().heartbeat(details)


def get_heartbeat_details() -> Any:
    """The details of the last `heartbeat()` of an earlier attempt of the
    current task (or of a worker that lost it); None when there are none."""
    execution = current()
    assignment = execution.assignment
    if not assignment.HasField("heartbeat_details"):
        return None
    return to_json(assignment.heartbeat_details)


def interrupt(
    value: Any, *, timeout: float | timedelta | None = None, default: Any = NO_DEFAULT
) -> Any:
    """Pause the run and surface `value` to the client, as LangGraph's
    `interrupt`. When the run is resumed with `Command(resume=v)`, the task
    or entrypoint is replayed and this call returns `v`. Several calls in one
    task are matched to resume values by their order.

        @task
        def review(essay: str) -> bool:
            return interrupt({"essay": essay, "action": "approve?"})

    With a `timeout` (seconds or a timedelta, on the service's clock) the
    service answers the interrupt itself when no resume came in time: this
    call then returns `default`, or raises InterruptTimeoutError when no
    default was given. Whichever comes first answers it, once.

        approved = interrupt("approve the refund?", timeout=timedelta(days=1), default=False)
    """
    seconds = None
    if timeout is None and default is not NO_DEFAULT:
        raise TypeError("an interrupt's default is what a timeout returns: give a timeout too")
    if timeout is not None:
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"an interrupt's timeout is finite and not negative, got {timeout!r}")
    return current().interrupt(value, timeout=seconds, default=default)


def get_stream_writer() -> Callable[[Any], None]:
    """A function that writes custom stream data (stream mode "custom") from
    inside a task or an entrypoint."""
    return current().write


def get_previous_state() -> Any:
    """The value the thread's previous run saved (its return value, or the
    `save` of `entrypoint.final`); None on the first run."""
    return current().previous


def get_store() -> Store:
    """The long-term memory store (see `cairn.Store`), from inside a task, an
    entrypoint or a graph node, as LangGraph's `get_store()`. It reaches the
    server the task came from, in the worker's namespace and with its
    credentials, so memories written here are those `client.store` and
    other runs read.

        @task
        def remember(user: str, fact: str) -> None:
            get_store().put(("users", user, "facts"), uuid.uuid4().hex, {"fact": fact})
    """
    store = current().store
    if store is None:
        raise RuntimeError("this execution has no store (it is not running on a connected worker)")
    return store
