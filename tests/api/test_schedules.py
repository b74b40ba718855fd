"""ScheduleService on an in-process server with an injected clock: a
schedule fires once per due time, honours pause, resume and trigger, its
thread, overlap and catch-up policies, and its namespace; bad requests get
INVALID_ARGUMENT naming the field. No test waits for time: the clock is
moved, and tests wait (with a timeout) for what the firing did."""

from __future__ import annotations

import asyncio
import pathlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2

from cairn import (
    AlreadyExistsError,
    Client,
    InvalidArgumentError,
    NotFoundError,
    RunState,
    ScheduleFiring,
    ScheduleFiringState,
    Worker,
    entrypoint,
    task,
)
from cairn._errors import from_rpc_error
from cairn.v1 import schedule_service_pb2 as pb
from cairn.v1 import schedule_service_pb2_grpc
from cairn_server.auth import AuthConfig
from cairn_server.server import CairnServer
from tests.clock import START, TestClock, clocked_server
from tests.schedules.support import firings_until

gate = threading.Event()


@entrypoint()
def echo(x: Any) -> Any:
    return x


@task
def wait_for_gate(x: Any) -> Any:
    gate.wait(30)
    return x


@entrypoint()
def gated(x: Any) -> Any:
    return wait_for_gate(x).result()


@entrypoint()
def count(x: Any, *, previous: Any = None) -> int:
    return (previous or 0) + 1


FUNCTIONS = [echo, wait_for_gate, gated, count]


@pytest.fixture
def clock() -> TestClock:
    return TestClock()


@pytest.fixture
async def server(db_path: pathlib.Path, clock: TestClock) -> AsyncIterator[tuple[CairnServer, str]]:
    try:
        async with clocked_server(db_path, clock, schedule_poll_interval=0.05) as served:
            yield served
    finally:
        gate.set()  # a test that failed midway leaves no task waiting


@pytest.fixture(autouse=True)
def closed_gate() -> None:
    gate.clear()


@pytest.fixture
async def tick(server: tuple[CairnServer, str]) -> Callable[[], Awaitable[None]]:
    """One look of the poller, now (besides its own loop)."""
    poller = server[0].schedule_poller
    assert poller is not None
    return poller.tick


def states(firings: list[ScheduleFiring]) -> list[str]:
    return [f.state.value for f in firings]


async def run_ended(client: Client, run_id: str) -> RunState:
    """The state a run ends in (or stops at an interrupt)."""
    async with asyncio.timeout(15):
        async for _ in client.join(run_id):
            pass
    return (await client.get_run(run_id)).state


async def test_create_get_list_pause_resume_delete(
    client: Client, clock: TestClock, start_worker: Any
) -> None:
    created = await client.schedules.create(
        echo, {"topic": "cats"}, interval=3600, schedule_id="hourly", metadata={"team": "a"}
    )
    cron = await client.schedules.create(
        "echo", cron="0 9 * * MON-FRI", time_zone="Europe/Paris", schedule_id="mornings"
    )

    assert created.target == "echo" and created.input == {"topic": "cats"}
    assert created.interval is not None and created.interval.total_seconds() == 3600
    assert created.next_fire_at is not None
    assert created.next_fire_at.timestamp() == pytest.approx(START + 3600, abs=1e-3)
    # 2027-01-15 is a Friday: next Monday 09:00 in Paris is 08:00 UTC.
    assert cron.cron == "0 9 * * MON-FRI" and cron.next_fire_at is not None
    assert cron.next_fire_at.isoformat() == "2027-01-18T08:00:00"
    assert [s.schedule_id for s in await client.schedules.list()] == ["hourly", "mornings"]
    assert await client.schedules.get("hourly") == created

    paused = await client.schedules.pause("hourly")
    assert paused.paused and paused.next_fire_at is None
    assert (await client.schedules.pause("hourly")).paused  # again: no change
    clock.advance(7200)
    resumed = await client.schedules.resume("hourly")
    assert not resumed.paused and resumed.next_fire_at is not None
    assert resumed.next_fire_at.timestamp() == pytest.approx(START + 10800, abs=1e-3)

    await client.schedules.delete("hourly")
    with pytest.raises(NotFoundError) as raised:
        await client.schedules.get("hourly")
    assert raised.value.reason == "SCHEDULE_NOT_FOUND"
    with pytest.raises(NotFoundError):
        await client.schedules.delete("hourly")


async def test_a_schedule_fires_once_per_due_time(
    client: Client,
    clock: TestClock,
    start_worker: Any,
    tick: Callable[[], Awaitable[None]],
    server: tuple[CairnServer, str],
) -> None:
    await start_worker(FUNCTIONS)
    await client.schedules.create(echo, {"n": 1}, interval=60, schedule_id="every-minute")

    clock.advance(59)
    await tick()
    assert (await client.schedules.get("every-minute")).recent_firings == ()

    clock.advance(1)
    [first] = await firings_until(client, "every-minute", lambda f: len(f) == 1)
    await tick()  # a look after the firing finds nothing more to do
    clock.advance(60)
    firings = await firings_until(client, "every-minute", lambda f: len(f) == 2)

    assert states(firings) == ["started", "started"]
    assert [f.firing_id for f in firings] == ["20270115T080100Z", "20270115T080200Z"]
    assert first.thread_id == "every-minute-20270115T080100Z"
    run = await client.get_run(first.run_id)
    assert run.thread_id == first.thread_id
    assert run.metadata["schedule_id"] == "every-minute"
    assert await run_ended(client, first.run_id) is RunState.SUCCEEDED
    assert (await client.get_run(first.run_id)).output == {"n": 1}
    runs = await client.list_runs(limit=100)
    assert sorted(r.run_id for r in runs) == sorted(f.run_id for f in firings)
    counted = server[0].metrics.registry.get_sample_value(
        "cairn_schedule_firings_total", {"namespace": "default", "outcome": "started"}
    )
    assert counted == 2


async def test_pause_stops_due_times_and_trigger_fires_anyway(
    client: Client, clock: TestClock, start_worker: Any, tick: Callable[[], Awaitable[None]]
) -> None:
    await start_worker(FUNCTIONS)
    await client.schedules.create(echo, "x", interval=60, schedule_id="s", paused=True)

    clock.advance(600)
    await tick()
    assert (await client.schedules.get("s")).recent_firings == ()

    fired = await client.schedules.trigger("s", request_id="by-hand")
    again = await client.schedules.trigger("s", request_id="by-hand")
    assert fired.state is ScheduleFiringState.STARTED and fired.triggered
    assert again == fired
    assert fired.firing_id == "trigger-by-hand"
    assert await run_ended(client, fired.run_id) is RunState.SUCCEEDED

    await client.schedules.resume("s")  # due times of the pause do not fire
    await tick()
    assert len((await client.schedules.get("s")).recent_firings) == 1
    clock.advance(60)
    firings = await firings_until(client, "s", lambda f: len(f) == 2)
    assert states(firings) == ["started", "started"]
    assert len({f.run_id for f in firings}) == 2


async def test_overlap_skip(
    client: Client, clock: TestClock, start_worker: Any, tick: Callable[[], Awaitable[None]]
) -> None:
    await start_worker(FUNCTIONS)
    await client.schedules.create(gated, "x", interval=60, schedule_id="s")
    clock.advance(60)
    [first] = await firings_until(client, "s", lambda f: len(f) == 1)

    clock.advance(60)
    firings = await firings_until(client, "s", lambda f: len(f) == 2)

    assert states(firings) == ["started", "skipped"]
    assert first.run_id in firings[1].message
    gate.set()
    assert await run_ended(client, first.run_id) is RunState.SUCCEEDED
    clock.advance(60)
    firings = await firings_until(client, "s", lambda f: len(f) == 3)
    assert states(firings) == ["started", "skipped", "started"]


async def test_overlap_queue_starts_one_waiting_firing_after_the_run(
    client: Client, clock: TestClock, start_worker: Any
) -> None:
    await start_worker(FUNCTIONS)
    await client.schedules.create(gated, "x", interval=60, schedule_id="s", overlap_policy="queue")
    clock.advance(60)
    [first] = await firings_until(client, "s", lambda f: len(f) == 1)
    clock.advance(60)
    await firings_until(client, "s", lambda f: len(f) == 2)
    clock.advance(60)

    firings = await firings_until(client, "s", lambda f: len(f) == 3)
    assert states(firings) == ["started", "waiting", "skipped"]
    assert firings[1].firing_id in firings[2].message

    gate.set()
    firings = await firings_until(client, "s", lambda f: states(f)[1] == "started")
    assert await run_ended(client, first.run_id) is RunState.SUCCEEDED
    assert await run_ended(client, firings[1].run_id) is RunState.SUCCEEDED


async def test_overlap_cancel_previous(client: Client, clock: TestClock, start_worker: Any) -> None:
    await start_worker(FUNCTIONS)
    await client.schedules.create(
        gated, "x", interval=60, schedule_id="s", overlap_policy="cancel_previous"
    )
    clock.advance(60)
    [first] = await firings_until(client, "s", lambda f: len(f) == 1)
    clock.advance(60)

    firings = await firings_until(client, "s", lambda f: len(f) == 2)

    assert states(firings) == ["started", "started"]
    assert await run_ended(client, first.run_id) is RunState.CANCELLED
    gate.set()
    assert await run_ended(client, firings[1].run_id) is RunState.SUCCEEDED


async def test_one_thread_carries_state_from_firing_to_firing(
    client: Client, clock: TestClock, start_worker: Any
) -> None:
    await start_worker(FUNCTIONS)
    schedule = await client.schedules.create(
        count, 0, interval=60, schedule_id="counter", thread_policy="one_thread"
    )
    assert schedule.thread_id == "schedule-counter"
    outputs = []
    for n in (1, 2):
        clock.advance(60)
        firings = await firings_until(client, "counter", lambda f, n=n: len(f) == n)  # type: ignore[misc]
        assert await run_ended(client, firings[-1].run_id) is RunState.SUCCEEDED
        outputs.append((await client.get_run(firings[-1].run_id)).output)

    assert outputs == [1, 2]
    assert {f.thread_id for f in firings} == {"schedule-counter"}


@pytest.mark.parametrize(("policy", "state"), [("skip", "skipped"), ("latest", "started")])
async def test_catch_up_after_downtime(
    client: Client, clock: TestClock, start_worker: Any, policy: str, state: str
) -> None:
    await start_worker(FUNCTIONS)
    await client.schedules.create(
        echo, "x", interval=3600, schedule_id="hourly", catchup_policy=policy
    )

    clock.advance(10.5 * 3600)  # ten due times passed while "nobody was running"
    [firing] = await firings_until(client, "hourly", lambda f: len(f) == 1)

    assert firing.state.value == state
    assert firing.due_at is not None and firing.due_at.timestamp() == START + 10 * 3600
    schedule = await client.schedules.get("hourly")
    assert schedule.next_fire_at is not None
    assert schedule.next_fire_at.timestamp() == START + 11 * 3600
    if state == "skipped":
        assert "missed" in firing.message and not firing.run_id


async def test_a_firing_without_a_worker_fails_and_the_schedule_goes_on(
    client: Client, clock: TestClock
) -> None:
    await client.schedules.create("nobody-serves-this", interval=60, schedule_id="s")
    clock.advance(60)

    [firing] = await firings_until(client, "s", lambda f: len(f) == 1)

    assert firing.state is ScheduleFiringState.FAILED
    assert firing.message.startswith("TARGET_NOT_FOUND")
    assert (await client.schedules.get("s")).next_fire_at is not None


async def test_a_firing_over_the_namespaces_run_limit_fails_as_a_client_start_would(
    db_path: pathlib.Path, clock: TestClock
) -> None:
    limited = clocked_server(
        db_path.with_name("limited.db"),
        clock,
        schedule_poll_interval=0.05,
        auth=AuthConfig(max_runs_per_namespace=1),
    )
    async with limited as (_, address):
        worker = Worker(address, functions=FUNCTIONS)
        running = asyncio.ensure_future(worker.run())
        try:
            async with Client(address) as client:
                await asyncio.wait_for(worker.connected.wait(), 10)
                held = client.stream(gated, "held", thread_id="busy")  # the namespace's one run
                await anext(held)
                await client.schedules.create(echo, "x", interval=60, schedule_id="s")
                clock.advance(60)
                [firing] = await firings_until(client, "s", lambda f: len(f) == 1)
                assert firing.state is ScheduleFiringState.FAILED
                assert firing.message.startswith("TOO_MANY_RUNS")
                gate.set()
                await held.aclose()
        finally:
            gate.set()
            await worker.stop(grace=1)
            await asyncio.wait_for(running, 10)


async def test_schedules_stay_in_their_namespace(
    address: str, clock: TestClock, client: Client
) -> None:
    worker = Worker(address, functions=[echo], namespace="team-a")
    running = asyncio.ensure_future(worker.run())
    try:
        await asyncio.wait_for(worker.connected.wait(), 10)
        async with Client(address, namespace="team-a") as team:
            await team.schedules.create(echo, "x", interval=60, schedule_id="s")
            with pytest.raises(NotFoundError):
                await client.schedules.get("s")
            with pytest.raises(NotFoundError):
                await client.schedules.trigger("s")
            assert await client.schedules.list() == []
            clock.advance(60)
            [firing] = await firings_until(team, "s", lambda f: len(f) == 1)
            assert firing.state is ScheduleFiringState.STARTED
            assert (await team.get_run(firing.run_id)).thread_id == firing.thread_id
            with pytest.raises(NotFoundError):
                await client.get_run(firing.run_id)
    finally:
        await worker.stop(grace=1)
        await asyncio.wait_for(running, 5)


async def test_a_retried_create_returns_the_schedule_and_a_taken_id_is_refused(
    client: Client,
) -> None:
    first = await client.schedules.create("echo", interval=60, schedule_id="s", request_id="r")
    again = await client.schedules.create("echo", interval=60, schedule_id="s", request_id="r")
    assert again == first
    with pytest.raises(AlreadyExistsError) as raised:
        await client.schedules.create("echo", interval=60, schedule_id="s")
    assert raised.value.reason == "SCHEDULE_ALREADY_EXISTS"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "0 9 * * *", "time_zone": "Mars/Olympus"}, "time_zone"),
        ({"interval": duration_pb2.Duration(nanos=500_000_000)}, "interval"),
        ({"interval": duration_pb2.Duration(seconds=-5)}, "interval"),
        ({}, "cron"),
        ({"cron": "@daily", "target": ""}, "target"),
        ({"cron": "@daily", "thread_id": "t"}, "thread_id"),
        ({"cron": "@daily", "schedule_id": "has space"}, "schedule_id"),
        ({"cron": "@daily", "overlap_policy": 9}, "overlap_policy"),
    ],
)
async def test_bad_requests_name_their_field(
    address: str, fields: dict[str, Any], field: str
) -> None:
    request = pb.CreateScheduleRequest(**{"target": "echo", **fields})
    async with grpc.aio.insecure_channel(address) as channel:
        stub = schedule_service_pb2_grpc.ScheduleServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.CreateSchedule(request)
        listed = await stub.ListSchedules(pb.ListSchedulesRequest())
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert _info(raised.value)["field"] == field
    assert list(listed.schedules) == []


def _info(error: grpc.aio.AioRpcError) -> dict[str, str]:
    details = from_rpc_error(error)
    assert isinstance(details, InvalidArgumentError)
    return dict(details.metadata)
