"""Why a queued task waits, as the dispatcher tells its run: no connected
worker (nor relay) serves its name, or all that do are busy; told again
whenever that changes while it stays queued, and never for a task that
another replica's run relayed here."""

from __future__ import annotations

from cairn_server.dispatch.dispatcher import Dispatcher, WorkerConnection
from cairn_server.dispatch.messages import Assignment, Registration
from cairn_server.domain import TaskKind, WaitReason

NO_WORKER, BUSY = WaitReason.NO_WORKER, WaitReason.WORKER_BUSY


class Link:
    def lost(self, assignment: Assignment) -> None:
        pass


def worker(*names: str, relay: bool = False, slots: int = 16) -> WorkerConnection:
    return WorkerConnection(
        worker_id="relay" if relay else "w",
        registrations={n: Registration(n, TaskKind.TASK) for n in names},
        relay=relay,
        max_tasks=slots,
    )


def task(task_id: str, name: str, relay: Link | None = None) -> Assignment:
    return Assignment(task_id, name, "run", "thread", "cp", 1, None, (), (), (), False, relay=relay)


def dispatcher() -> tuple[Dispatcher, list[tuple[str, WaitReason]], list[str]]:
    waits: list[tuple[str, WaitReason]] = []
    assigned: list[str] = []
    found = Dispatcher(
        on_assigned=lambda a: assigned.append(a.task_id),
        on_lost=lambda a: None,
        on_waiting=lambda a, reason: waits.append((a.task_id, reason)),
    )
    return found, waits, assigned


async def test_a_task_no_worker_serves_waits_for_one_until_a_worker_connects() -> None:
    tasks, waits, assigned = dispatcher()
    tasks.add(worker("other"))
    tasks.submit(task("t1", "fetch"))
    assert waits == [("t1", NO_WORKER)]
    assert tasks.wait_reason("fetch", "t1") is NO_WORKER
    tasks.add(worker("fetch"))
    assert assigned == ["t1"]
    assert tasks.wait_reason("fetch", "t1") is None
    assert waits == [("t1", NO_WORKER)]  # the assignment ends the wait


async def test_the_reason_follows_workers_that_come_and_go() -> None:
    tasks, waits, assigned = dispatcher()
    busy = worker("fetch", slots=1)
    tasks.add(busy)
    tasks.submit(task("t1", "fetch"))
    tasks.submit(task("t2", "fetch"))
    assert (assigned, waits) == (["t1"], [("t2", BUSY)])
    tasks.remove(busy)  # its only worker stopped: t2 now waits for any worker
    assert waits == [("t2", BUSY), ("t2", NO_WORKER)]
    full = worker("fetch", slots=0)
    tasks.add(full)  # one connects, but it has no free slot
    assert waits[-1] == ("t2", BUSY)
    tasks.add(worker("fetch"))
    assert assigned == ["t1", "t2"]
    assert len(waits) == 3


async def test_a_relay_serving_the_name_counts_as_a_worker() -> None:
    tasks, waits, assigned = dispatcher()
    relay = worker("fetch", relay=True, slots=1)
    tasks.add(relay)
    tasks.submit(task("t1", "fetch"))
    tasks.submit(task("t2", "fetch"))
    assert (assigned, waits) == (["t1"], [("t2", BUSY)])
    tasks.remove(relay)
    assert waits[-1] == ("t2", NO_WORKER)


async def test_tasks_relayed_here_are_not_reported() -> None:
    tasks, waits, _ = dispatcher()
    tasks.submit(task("t1", "fetch", relay=Link()))
    assert waits == []


async def test_a_withdrawn_task_waits_no_more() -> None:
    tasks, waits, _ = dispatcher()
    tasks.submit(task("t1", "fetch"))
    tasks.withdraw(["t1"], "the run stopped")
    assert tasks.wait_reason("fetch", "t1") is None
    tasks.add(worker("fetch", slots=0))
    assert waits == [("t1", NO_WORKER)]
