"""Durable sleep on a real server with an injected timer clock (issue 20):
an entrypoint that sleeps parks its run with nothing held, wakes when due
(never before), replays what ran before the sleep from its journal, and can be
cancelled while it sleeps. No test waits for real time: the clock is moved."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from datetime import UTC, datetime, timedelta

import pytest

import cairn
from cairn import Client, RunState, TaskFailedError, WaitReason, entrypoint, task
from cairn_server.runtime.handle import RunAbandoned
from cairn_server.server import CairnServer
from tests.clock import TestClock
from tests.conftest import StartWorker
from tests.timers.sleepers import outcome, start_sleeper

calls: list[str] = []


@task
def step(name: str) -> str:
    calls.append(name)
    return name.upper()


@entrypoint()
def reminder(user: str) -> list[str]:
    first = step(f"draft {user}").result()
    cairn.sleep(timedelta(hours=1))
    return [first, step(f"send {user}").result()]


@entrypoint()
async def async_reminder(user: str) -> str:
    await cairn.sleep(60)
    return await step(f"async {user}")


@entrypoint()
def until_noon(day: str) -> str:
    cairn.sleep_until(datetime.fromisoformat(f"{day}T12:00:00+00:00"))
    return step("noon").result()


@task
def nap() -> None:
    cairn.sleep(1)


@entrypoint()
def napper(_: int) -> str:
    try:
        nap().result()
    except TaskFailedError as error:
        return f"{error.type}: {error}"
    return "slept"


@pytest.fixture(autouse=True)
def fresh_calls() -> None:
    calls.clear()


async def parked(server: tuple[CairnServer, str], run_id: str) -> None:
    """Once the run's drive let go of it (its sleeping event may come just
    before): it stopped with its timer."""
    handle = server[0].runs.active(run_id)
    if handle is not None:
        with contextlib.suppress(RunAbandoned):
            await asyncio.wait_for(asyncio.shield(handle.done), 10)
        assert handle.timer_at is not None


async def holds_nothing(server: tuple[CairnServer, str], client: Client, run_id: str) -> None:
    """The sleeping run is driven nowhere and holds no worker slot."""
    await parked(server, run_id)
    [worker] = await client.list_workers()
    assert worker.free_entrypoint_slots == worker.max_entrypoints
    assert worker.free_task_slots == worker.max_concurrency


async def wake(server: tuple[CairnServer, str]) -> int:
    """What the server's timer loop does when it looks: wake the due runs
    (the loop itself may get to some of them first)."""
    return await server[0].runs.timers.wake_due()


def fired(server: tuple[CairnServer, str]) -> float:
    """Timers the server fired, by either path."""
    return server[0].metrics.registry.get_sample_value("cairn_timers_fired_total") or 0.0


async def test_a_sleeping_run_wakes_when_due_and_replays_what_ran_before(
    server: tuple[CairnServer, str], client: Client, start_worker: StartWorker, clock: TestClock
) -> None:
    await start_worker([reminder, step])
    run = await start_sleeper(client, "reminder", "ada", "t-sleep")
    [timer] = run.waiting
    assert timer.task_name == "reminder"
    assert timer.until is not None and timer.until.timestamp() == pytest.approx(clock.now + 3600)
    # Nothing is held: no handle in the server, no task on a worker.
    assert server[0].runs.active(run.run_id) is None
    assert (await client.get_run(run.run_id)).state is RunState.RUNNING
    clock.now += 3599
    assert await wake(server) == 0
    assert calls == ["draft ada"]
    clock.now += 1
    await wake(server)
    done = await outcome(client, run.run_id)
    assert done.state is RunState.SUCCEEDED
    assert fired(server) == 1
    assert done.output == ["DRAFT ADA", "SEND ADA"]
    assert done.waiting == ()
    assert calls == ["draft ada", "send ada"]  # the draft did not run again
    state = await client.get_state("t-sleep")
    assert state.values == ["DRAFT ADA", "SEND ADA"]


async def test_an_async_entrypoint_may_await_its_sleep(
    server: tuple[CairnServer, str], client: Client, start_worker: StartWorker, clock: TestClock
) -> None:
    await start_worker([async_reminder, step])
    run = await start_sleeper(client, "async_reminder", "bo", "t-async")
    clock.now += 60
    await wake(server)
    assert (await outcome(client, run.run_id)).output == "ASYNC BO"


async def test_sleep_until_a_time_on_the_service_clock(
    server: tuple[CairnServer, str], client: Client, start_worker: StartWorker, clock: TestClock
) -> None:
    clock.now = datetime(2027, 1, 1, 9, tzinfo=UTC).timestamp()
    await start_worker([until_noon, step])
    run = await start_sleeper(client, "until_noon", "2027-01-01", "t-noon")
    assert run.waiting[0].until == datetime(2027, 1, 1, 12)  # naive UTC, as every SDK time
    clock.now += 3 * 3600
    await wake(server)
    assert (await outcome(client, run.run_id)).output == "NOON"


async def test_cancelling_a_sleeping_run_cancels_its_timer(
    server: tuple[CairnServer, str], client: Client, start_worker: StartWorker, clock: TestClock
) -> None:
    await start_worker([reminder, step])
    run = await start_sleeper(client, "reminder", "cy", "t-cancel")
    cancelled = await client.cancel_run(run.run_id)
    assert cancelled.state is RunState.CANCELLED
    assert (await client.get_thread("t-cancel")).status.value == "idle"
    clock.now += 7200
    assert await wake(server) == 0
    assert (await client.get_run(run.run_id)).state is RunState.CANCELLED
    assert calls == ["draft cy"]


async def test_only_an_entrypoint_sleeps(
    server: tuple[CairnServer, str], client: Client, start_worker: StartWorker
) -> None:
    await start_worker([napper, nap])
    result = (await client.invoke("napper", 0, thread_id="t-nap")).output
    assert "RuntimeError" in result and "only in an entrypoint" in result


async def test_a_sleep_of_zero_returns_after_one_replay(
    server: tuple[CairnServer, str], client: Client, start_worker: StartWorker
) -> None:
    @entrypoint(name="zero")
    def zero(_: int) -> str:
        cairn.sleep(0)
        return step("after").result()

    await start_worker([zero, step])
    # The server's own timer loop wakes it: it is due at once.
    done = await asyncio.wait_for(client.invoke("zero", 0, thread_id="t-zero"), 30)
    assert done.output == "AFTER"


@entrypoint()
def dozer(n: int) -> int:
    cairn.sleep(60)
    return n


async def test_a_thousand_sleeping_runs_hold_no_worker_and_nothing_in_the_server(
    server: tuple[CairnServer, str], client: Client, start_worker: StartWorker, clock: TestClock
) -> None:
    await start_worker([dozer], max_entrypoints=64)
    runs = server[0].runs
    count = 1000
    gate = asyncio.Semaphore(64)

    async def start(n: int) -> str:
        async with gate:
            return (await start_sleeper(client, "dozer", n, f"t-doze-{n}")).run_id

    run_ids = await asyncio.gather(*(start(n) for n in range(count)))
    for run_id in run_ids:
        await parked(server, run_id)
    sleepers = await client.list_runs(state=RunState.RUNNING, waiting=True, limit=2 * count)
    assert len(sleepers) == count
    assert {w.reason for r in sleepers for w in r.waiting} == {WaitReason.TIMER}
    # Nothing per run: no run driven, no lease, no task on a worker.
    assert runs.active_in("default") == 0
    assert server[0].metrics.registry.get_sample_value("cairn_leases_held") == 0
    [worker] = await client.list_workers()
    assert worker.free_entrypoint_slots == worker.max_entrypoints == 64
    clock.now += 60
    await wake(server)
    outputs = await asyncio.gather(*(outcome(client, run_id) for run_id in run_ids))
    assert sorted(r.output for r in outputs) == list(range(count))
    assert fired(server) == count


entered, gate = threading.Event(), threading.Event()


@task
def held_open(label: str) -> str:
    entered.set()
    gate.wait(30)
    return label


@entrypoint()
def wakes_into_work(label: str) -> str:
    cairn.sleep(60)
    return held_open(label).result()


async def test_a_woken_run_no_longer_says_it_sleeps(
    server: tuple[CairnServer, str], client: Client, start_worker: StartWorker, clock: TestClock
) -> None:
    entered.clear()
    gate.clear()
    await start_worker([wakes_into_work, held_open])
    run = await start_sleeper(client, "wakes_into_work", "w", "t-woken")
    clock.advance(60)
    await wake(server)
    try:
        await asyncio.get_running_loop().run_in_executor(None, entered.wait, 30)
        woken = await client.get_run(run.run_id)
        assert woken.state is RunState.RUNNING
        assert all(w.reason is not WaitReason.TIMER for w in woken.waiting)
        [listed] = [r for r in await client.list_runs("t-woken")]
        assert all(w.reason is not WaitReason.TIMER for w in listed.waiting)
    finally:
        gate.set()
    assert (await outcome(client, run.run_id)).output == "w"
