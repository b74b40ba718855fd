"""The timeouts of the tasks a dispatcher queues and hands out (TaskTimeouts
in run.proto, as Temporal's activity timeouts):

- schedule_to_start runs while an attempt waits in a queue;
- start_to_close and heartbeat run while a worker holds a task (not an
  entrypoint, which takes only schedule_to_start);
- every timer of a task stops when the dispatcher lets go of it (done,
  withdrawn, lost, or expired).

What an expiry does is the dispatcher's business: `expired` is called with
the assignment and which timeout ran out. A heartbeat does not re-arm its
timer: it notes the time, and the timer, when it runs out, sleeps again for
what is left, so frequent heartbeats cost one clock read each.

The clock and the scheduling function are injected, so tests drive time
without sleeping; by default they are the running event loop's.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from typing import Protocol

from cairn_server.dispatch.messages import Assignment
from cairn_server.domain import ErrorRecord, TaskKind

TIMEOUT_ERROR = "TaskTimeoutError"


class Timer(Protocol):
    def cancel(self) -> None: ...


CallLater = Callable[[float, Callable[[], None]], Timer]


class Expiry(enum.StrEnum):
    """Which timeout ran out (the `timeout` of a TaskTimeoutError's details)."""

    SCHEDULE_TO_START = "schedule_to_start"
    START_TO_CLOSE = "start_to_close"
    HEARTBEAT = "heartbeat"


def timeout_error(assignment: Assignment, which: Expiry) -> ErrorRecord:
    """The TaskTimeoutError a schedule-to-start (not retryable) or a
    start-to-close (retryable) expiry fails the attempt with."""
    timeouts = assignment.timeouts
    assert timeouts is not None
    seconds = getattr(timeouts, which.value)
    name = assignment.name
    if which is Expiry.SCHEDULE_TO_START:
        message = (
            f"no worker took task {name!r} within its schedule_to_start timeout of {seconds:g}s"
        )
    else:
        message = (
            f"attempt {assignment.attempt} of task {name!r} ran longer than its"
            f" {which.value} timeout of {seconds:g}s"
        )
    return ErrorRecord(
        TIMEOUT_ERROR,
        message,
        retryable=which is not Expiry.SCHEDULE_TO_START,
        details={
            "timeout": which.value,
            "task_id": assignment.task_id,
            "task_name": name,
            "timeout_seconds": seconds,
        },
    )


class TaskTimers:
    """The running timeouts of one dispatcher's tasks, by task id."""

    def __init__(
        self,
        expired: Callable[[Assignment, Expiry], None],
        *,
        clock: Callable[[], float] | None = None,
        call_later: CallLater | None = None,
    ) -> None:
        self._expired = expired
        self._clock = clock
        self._call_later = call_later
        self._timers: dict[str, dict[Expiry, Timer]] = {}
        self._last_beat: dict[str, float] = {}

    def queued(self, assignment: Assignment) -> None:
        """The attempt waits for a worker."""
        timeouts = assignment.timeouts
        if timeouts is not None and timeouts.schedule_to_start is not None:
            self._arm(assignment, Expiry.SCHEDULE_TO_START, timeouts.schedule_to_start)

    def started(self, assignment: Assignment) -> None:
        """A worker received the attempt."""
        self.stop(assignment.task_id)
        timeouts = assignment.timeouts
        if timeouts is None or assignment.kind is TaskKind.ENTRYPOINT:
            return
        if timeouts.start_to_close is not None:
            self._arm(assignment, Expiry.START_TO_CLOSE, timeouts.start_to_close)
        if timeouts.heartbeat is not None:
            self._last_beat[assignment.task_id] = self._now()
            self._arm(assignment, Expiry.HEARTBEAT, timeouts.heartbeat)

    def heartbeat(self, task_id: str) -> None:
        """The worker holding the task says it is alive."""
        if task_id in self._last_beat:
            self._last_beat[task_id] = self._now()

    def stop(self, task_id: str) -> None:
        """Cancel every timer of the task."""
        for timer in self._timers.pop(task_id, {}).values():
            timer.cancel()
        self._last_beat.pop(task_id, None)

    def running(self, task_id: str) -> set[Expiry]:
        """The timeouts running for the task (for tests and inspection)."""
        return set(self._timers.get(task_id, ()))

    # --- internals ------------------------------------------------------------

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def _arm(self, assignment: Assignment, which: Expiry, delay: float) -> None:
        call_later = self._call_later or asyncio.get_running_loop().call_later
        timer = call_later(max(delay, 0.0), lambda: self._fire(assignment, which))
        self._timers.setdefault(assignment.task_id, {})[which] = timer

    def _fire(self, assignment: Assignment, which: Expiry) -> None:
        task_id = assignment.task_id
        timers = self._timers.get(task_id, {})
        if which not in timers:
            return  # stopped meanwhile
        if which is Expiry.HEARTBEAT:
            assert assignment.timeouts is not None and assignment.timeouts.heartbeat is not None
            left = self._last_beat[task_id] + assignment.timeouts.heartbeat - self._now()
            if left > 0:
                self._arm(assignment, which, left)
                return
        del timers[which]
        self._expired(assignment, which)
