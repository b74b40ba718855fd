"""The task timeout rules of the dispatcher (TaskTimeouts in run.proto),
driven by an injected clock: no test sleeps."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from cairn_server.dispatch.dispatcher import Dispatcher, WorkerConnection
from cairn_server.dispatch.messages import Assignment, CancelNotice, Registration
from cairn_server.dispatch.timeouts import Expiry
from cairn_server.domain import ErrorRecord, TaskKind, TaskTimeouts


@dataclass
class Handle:
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeTime:
    """A clock and a call_later that only move when the test says so."""

    now: float = 0.0
    _due: list[tuple[float, int, Callable[[], None], Handle]] = field(default_factory=list)
    _order: itertools.count[int] = field(default_factory=itertools.count)

    def clock(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Handle:
        handle = Handle()
        heapq.heappush(self._due, (self.now + delay, next(self._order), callback, handle))
        return handle

    def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while self._due and self._due[0][0] <= target:
            when, _, callback, handle = heapq.heappop(self._due)
            self.now = when
            if not handle.cancelled:
                callback()
        self.now = target


@dataclass
class Seen:
    assigned: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    timed_out: list[tuple[str, ErrorRecord]] = field(default_factory=list)


def setup() -> tuple[Dispatcher, FakeTime, Seen]:
    time, seen = FakeTime(), Seen()
    dispatcher = Dispatcher(
        on_assigned=lambda a: seen.assigned.append(a.task_id),
        on_lost=lambda a: seen.lost.append(a.task_id),
        on_timed_out=lambda a, e: seen.timed_out.append((a.task_id, e)),
        clock=time.clock,
        call_later=time.call_later,
    )
    return dispatcher, time, seen


def worker(name: str = "fetch", kind: TaskKind = TaskKind.TASK) -> WorkerConnection:
    return WorkerConnection(worker_id="w", registrations={name: Registration(name, kind)})


def task(
    task_id: str = "t1", name: str = "fetch", attempt: int = 1, **timeouts: float
) -> Assignment:
    return Assignment(
        task_id,
        name,
        "run",
        "thread",
        "cp",
        attempt,
        None,
        (),
        (),
        (),
        False,
        timeouts=TaskTimeouts(**timeouts),
    )


def sent(worker: WorkerConnection) -> list[object]:
    items = []
    while not worker.outbox.empty():
        items.append(worker.outbox.get_nowait())
    return items


async def test_a_task_no_worker_takes_in_time_fails_with_a_non_retryable_timeout() -> None:
    dispatcher, time, seen = setup()
    dispatcher.submit(task(schedule_to_start=2.0))
    time.advance(1.9)
    assert seen.timed_out == []
    time.advance(0.2)
    [(task_id, error)] = seen.timed_out
    assert task_id == "t1"
    assert error.type == "TaskTimeoutError"
    assert not error.retryable
    assert error.details == {
        "timeout": "schedule_to_start",
        "task_id": "t1",
        "task_name": "fetch",
        "timeout_seconds": 2.0,
    }
    assert "fetch" in error.message and "schedule_to_start" in error.message
    # Withdrawn from its queue: a worker that connects now does not get it.
    late = worker()
    dispatcher.add(late)
    assert late.held == {}


async def test_schedule_to_start_stops_when_a_worker_takes_the_task() -> None:
    dispatcher, time, seen = setup()
    dispatcher.submit(task(schedule_to_start=2.0))
    time.advance(1.0)
    taker = worker()
    dispatcher.add(taker)
    assert list(taker.held) == ["t1"]
    time.advance(10.0)
    assert seen.timed_out == []


async def test_an_attempt_that_runs_too_long_is_taken_back_and_fails_retryably() -> None:
    dispatcher, time, seen = setup()
    holder = worker()
    dispatcher.add(holder)
    dispatcher.submit(task(attempt=2, start_to_close=5.0))
    time.advance(4.0)
    assert seen.timed_out == []
    time.advance(1.0)
    [(task_id, error)] = seen.timed_out
    assert (task_id, error.type, error.retryable) == ("t1", "TaskTimeoutError", True)
    assert error.details is not None and error.details["timeout"] == "start_to_close"
    assert "attempt 2" in error.message
    assert holder.held == {}  # its later reports are TASK_NOT_HELD
    assert holder.running[TaskKind.TASK] == 0
    cancels = [m for m in sent(holder) if isinstance(m, CancelNotice)]
    assert [c.task_id for c in cancels] == ["t1"]


async def test_heartbeats_keep_a_task_and_silence_loses_it_to_another_worker() -> None:
    dispatcher, time, seen = setup()
    first = worker()
    dispatcher.add(first)
    dispatcher.submit(task(heartbeat=1.0))
    assert list(first.held) == ["t1"]
    for _ in range(5):  # five seconds, a heartbeat every 0.8 s
        time.advance(0.8)
        assert dispatcher.heartbeat(first, "t1") is not None
    assert seen.lost == []
    second = worker()
    dispatcher.add(second)
    time.advance(1.0)  # silent
    assert seen.lost == ["t1"]
    assert first.held == {}
    assert any(isinstance(m, CancelNotice) and m.task_id == "t1" for m in sent(first))
    assert dispatcher.heartbeat(first, "t1") is None  # rejected as TASK_NOT_HELD
    # The run dispatches it again (same attempt): it goes to the other worker,
    # though the first one is now the less loaded.
    second.running[TaskKind.TASK] += 1
    dispatcher.submit(task(heartbeat=1.0))
    assert list(second.held) == ["t1"]
    assert first.held == {}


async def test_a_task_lost_to_its_heartbeat_waits_for_the_other_worker_not_the_silent_one() -> None:
    dispatcher, time, seen = setup()
    first, second = worker(), worker()
    second.max_tasks = 1
    dispatcher.add(first)
    dispatcher.submit(task("t1", heartbeat=1.0))
    dispatcher.submit(task("x1"))
    dispatcher.add(second)
    dispatcher.submit(task("busy"))  # fills the second worker
    assert list(second.held) == ["busy"]
    time.advance(1.0)
    assert seen.lost == ["t1"]
    dispatcher.submit(task("t1", heartbeat=1.0))
    assert "t1" not in first.held  # queued for the second worker
    dispatcher.release(first, "x1")  # a slot frees: the first still does not take it
    assert "t1" not in first.held
    dispatcher.release(second, "busy")
    assert "t1" in second.held


async def test_the_only_worker_gets_a_task_lost_to_its_heartbeat_back() -> None:
    dispatcher, time, seen = setup()
    only = worker()
    dispatcher.add(only)
    dispatcher.submit(task(heartbeat=1.0))
    time.advance(1.5)
    assert seen.lost == ["t1"]
    dispatcher.submit(task(heartbeat=1.0))
    assert list(only.held) == ["t1"]


async def test_timers_stop_when_the_task_ends_or_is_withdrawn() -> None:
    dispatcher, time, seen = setup()
    holder = worker()
    dispatcher.add(holder)
    dispatcher.submit(task("done", start_to_close=1.0, heartbeat=1.0))
    dispatcher.submit(task("withdrawn", start_to_close=1.0, heartbeat=1.0))
    dispatcher.submit(task("queued", name="other", schedule_to_start=1.0))
    assert dispatcher.timers.running("done") == {Expiry.START_TO_CLOSE, Expiry.HEARTBEAT}
    dispatcher.release(holder, "done")
    dispatcher.withdraw(["withdrawn", "queued"], "the run stopped")
    for task_id in ("done", "withdrawn", "queued"):
        assert dispatcher.timers.running(task_id) == set()
    time.advance(10.0)
    assert seen.timed_out == [] and seen.lost == []


async def test_a_dropped_stream_stops_the_timers_of_what_the_worker_held() -> None:
    dispatcher, time, seen = setup()
    holder = worker()
    dispatcher.add(holder)
    dispatcher.submit(task(start_to_close=1.0, heartbeat=1.0))
    dispatcher.remove(holder)
    assert seen.lost == ["t1"]
    time.advance(10.0)
    assert seen.lost == ["t1"] and seen.timed_out == []


async def test_an_entrypoint_takes_only_a_schedule_to_start_timeout() -> None:
    dispatcher, time, seen = setup()
    holder = worker("flow", TaskKind.ENTRYPOINT)
    dispatcher.add(holder)
    dispatcher.submit(task(name="flow", start_to_close=1.0, heartbeat=1.0))
    assert list(holder.held) == ["t1"]
    time.advance(10.0)
    assert seen.timed_out == [] and seen.lost == []
    assert list(holder.held) == ["t1"]


async def test_registered_timeouts_outlive_the_worker_that_registered_them() -> None:
    dispatcher, _, _ = setup()
    timeouts = TaskTimeouts(schedule_to_start=3.0)
    registered = WorkerConnection(
        worker_id="w",
        registrations={"flow": Registration("flow", TaskKind.ENTRYPOINT, timeouts=timeouts)},
    )
    assert dispatcher.timeouts("flow") is None
    dispatcher.add(registered)
    dispatcher.remove(registered)
    assert dispatcher.timeouts("flow") == timeouts
