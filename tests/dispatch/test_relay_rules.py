"""Which tasks the dispatcher gives a relay (another replica's stream for its
own workers), and which it never does."""

from __future__ import annotations

from cairn_server.dispatch.dispatcher import Dispatcher, WorkerConnection
from cairn_server.dispatch.messages import Assignment, Registration
from cairn_server.domain import TaskKind


class Link:
    """Stands for the relay a task came through (api/relay.py)."""

    def __init__(self) -> None:
        self.lost_tasks: list[str] = []

    def lost(self, assignment: Assignment) -> None:
        self.lost_tasks.append(assignment.task_id)


def worker(*names: str, relay: bool = False) -> WorkerConnection:
    return WorkerConnection(
        worker_id="relay" if relay else "w",
        registrations={n: Registration(n, TaskKind.TASK) for n in names},
        relay=relay,
    )


def task(task_id: str, name: str, relay: Link | None = None) -> Assignment:
    return Assignment(task_id, name, "run", "thread", "cp", 1, None, (), (), (), False, relay=relay)


def dispatcher() -> tuple[Dispatcher, list[str], list[str]]:
    assigned: list[str] = []
    lost: list[str] = []
    found = Dispatcher(
        on_assigned=lambda a: assigned.append(a.task_id),
        on_lost=lambda a: lost.append(a.task_id),
    )
    return found, assigned, lost


async def test_a_relay_gets_only_names_no_worker_here_serves() -> None:
    tasks, assigned, _ = dispatcher()
    here, relay = worker("a"), worker("a", "b", relay=True)
    tasks.add(relay)
    tasks.add(here)
    tasks.submit(task("t1", "a"))
    tasks.submit(task("t2", "b"))
    assert list(here.held) == ["t1"]
    assert list(relay.held) == ["t2"]
    assert assigned == ["t1", "t2"]


async def test_a_task_waits_for_a_busy_worker_here_rather_than_go_to_a_relay() -> None:
    tasks, _, _ = dispatcher()
    here, relay = worker("a"), worker("a", relay=True)
    here.max_tasks = 1
    tasks.add(relay)
    tasks.add(here)
    tasks.submit(task("t1", "a"))
    tasks.submit(task("t2", "a"))
    assert (list(here.held), list(relay.held)) == (["t1"], [])
    tasks.release(here, "t1")
    assert list(here.held) == ["t2"]


async def test_queued_tasks_go_to_a_relay_that_connects_later() -> None:
    tasks, _, _ = dispatcher()
    tasks.submit(task("t1", "b"))
    relay = worker("b", relay=True)
    tasks.add(relay)
    assert list(relay.held) == ["t1"]


async def test_a_relayed_task_never_goes_to_another_relay() -> None:
    tasks, assigned, _ = dispatcher()
    link = Link()
    relay = worker("a", relay=True)
    tasks.add(relay)
    tasks.submit(task("t1", "a", relay=link))
    assert relay.held == {}
    here = worker("a")
    tasks.add(here)
    assert list(here.held) == ["t1"]
    assert assigned == []  # not a task of this replica's runs


async def test_a_relayed_task_whose_worker_leaves_goes_back_to_its_relay() -> None:
    tasks, _, lost = dispatcher()
    link = Link()
    here = worker("a")
    tasks.add(here)
    tasks.submit(task("t1", "a", relay=link))
    tasks.submit(task("t2", "a"))
    tasks.remove(here)
    assert link.lost_tasks == ["t1"]
    assert lost == ["t2"]


async def test_withdrawing_a_run_leaves_the_tasks_relayed_here_alone() -> None:
    tasks, _, _ = dispatcher()
    link = Link()
    here = worker("a")
    tasks.add(here)
    tasks.submit(task("t1", "a", relay=link))  # same run id, another replica's run
    tasks.submit(task("t2", "a"))
    tasks.withdraw_run("run", "cancelled")
    assert list(here.held) == ["t1"]
    tasks.withdraw_relayed(link, "relay closed")
    assert here.held == {}


async def test_queued_tasks_go_to_a_relay_once_the_last_worker_here_leaves() -> None:
    tasks, _, lost = dispatcher()
    here, relay = worker("a"), worker("a", relay=True)
    here.max_tasks = 1
    tasks.add(here)
    tasks.add(relay)
    tasks.submit(task("t1", "a"))
    tasks.submit(task("t2", "a"))
    assert relay.held == {}
    tasks.remove(here)
    assert lost == ["t1"]  # back to its run, which submits it again
    assert list(relay.held) == ["t2"]
