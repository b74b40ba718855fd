"""Schedules on three `cairn serve` replicas of one Postgres schema, sharing
a test clock (CAIRN_CLOCK_FILE): every due time fires exactly once, however
many replicas look and whichever of them is SIGKILLed, SIGTERMed or
restarted; a paused schedule does not fire; after a downtime the catch-up
policies hold.

Time moves only when the test moves the clock file. A second schedule
(`probe`) is due at the same times as the one under test: once the probe has
fired for a due time, some replica has looked at that time, so a schedule
that did not fire then never will (no test waits for nothing).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator

import pytest

from cairn import Client, ScheduleFiring
from cairn_server.timers import CLOCK_FILE_ENV, OffsetClock
from tests import postgres
from tests.e2e.processes import Process, free_port, start_worker
from tests.e2e.test_replicas import server_errors, start_replica
from tests.schedules.support import firings_until as wait_for_firings

HOUR = 3600


@pytest.fixture
def store_url() -> Iterator[str]:
    with postgres.fresh_schema() as url:
        yield url


@pytest.fixture
def clock(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> OffsetClock:
    """The clock file every process started by the test reads."""
    path = tmp_path / "clock"
    monkeypatch.setenv(CLOCK_FILE_ENV, str(path))
    return OffsetClock(path)


class Launched:
    """Every process the test starts, stopped (by PID) when it ends, however
    it ends."""

    def __init__(self) -> None:
        self.processes: list[Process] = []

    def replica(self, store_url: str, name: str, port: int = 0) -> tuple[str, Process]:
        port = port or free_port()
        self.processes.append(process := start_replica(store_url, port, name))
        return f"127.0.0.1:{port}", process

    def worker(self, address: str, log: pathlib.Path) -> Process:
        self.processes.append(process := start_worker(address, log))
        return process


@pytest.fixture
def launched() -> Iterator[Launched]:
    made = Launched()
    try:
        yield made
    finally:
        for process in made.processes:
            process.stop()


async def firings_until(
    client: Client,
    schedule_id: str,
    done: Callable[[list[ScheduleFiring]], bool],
    replicas: list[Process],
) -> list[ScheduleFiring]:
    return await wait_for_firings(
        client, schedule_id, done, seconds=60, context=lambda: server_errors(replicas)
    )


def runs_of(store_url: str, schedule_id: str) -> int:
    rows = postgres.query(
        store_url, "SELECT count(*) FROM runs WHERE thread_id LIKE $1", f"{schedule_id}-%"
    )
    return int(rows[0][0])


def count(n: int) -> Callable[[list[ScheduleFiring]], bool]:
    return lambda firings: len(firings) == n


def all_started(n: int) -> Callable[[list[ScheduleFiring]], bool]:
    """`n` firings that all started their run: a firing due while the run
    before it is still active waits for it (overlap policy QUEUE), which
    after a SIGKILL takes until another replica took that run over."""
    return lambda firings: len(firings) == n and all(f.state.value == "started" for f in firings)


@pytest.mark.timeout(300)
async def test_three_replicas_fire_once_per_due_time_through_restarts_pause_and_downtime(
    store_url: str, tmp_path: pathlib.Path, clock: OffsetClock, launched: Launched
) -> None:
    up = [launched.replica(store_url, f"r{i}") for i in range(3)]
    addresses = [address for address, _ in up]
    replicas = [process for _, process in up]
    launched.worker(",".join(addresses), tmp_path / "tasks.log")
    async with Client(addresses) as client:
        for name in ("main", "probe"):
            await client.schedules.create(
                "twenty_steps", 1, interval=HOUR, schedule_id=name, overlap_policy="queue"
            )

        # Hour 1, all three replicas looking.
        clock.advance(HOUR + 5)
        await firings_until(client, "main", all_started(1), replicas)
        assert runs_of(store_url, "main") == 1

        # Hour 2, with r0 SIGKILLed.
        replicas[0].kill()
        clock.advance(HOUR)
        await firings_until(client, "main", all_started(2), replicas)
        assert runs_of(store_url, "main") == 2

        # Hour 3, with r0 restarted and r1 stopped by SIGTERM.
        addresses[0], restarted = launched.replica(store_url, "r0")
        replicas = [restarted, *replicas[1:]]
        assert replicas[1].stop(timeout=30) == 0
        clock.advance(HOUR)
        await firings_until(client, "main", all_started(3), replicas)
        assert runs_of(store_url, "main") == 3

        # Hour 4, paused: the probe fires, main does not.
        await client.schedules.pause("main")
        clock.advance(HOUR)
        await firings_until(client, "probe", count(4), replicas)
        assert len((await client.schedules.get("main")).recent_firings) == 3
        await client.schedules.resume("main")
        await client.schedules.create(
            "twenty_steps", 1, interval=HOUR, schedule_id="skipper", catchup_policy="skip"
        )

    # Downtime: every replica stops, two and a half hours pass; they come
    # back on the same ports, so the worker reconnects.
    for process in replicas:
        process.stop(timeout=30)
    clock.advance(2.5 * HOUR)
    ports = [int(address.rpartition(":")[2]) for address in addresses]
    replicas = [launched.replica(store_url, f"r{i}", port)[1] for i, port in enumerate(ports)]
    async with Client(addresses) as client:
        await firings_until(client, "probe", count(5), replicas)
        main = await firings_until(client, "main", all_started(4), replicas)
        skipper = await firings_until(client, "skipper", count(1), replicas)

        # Catch-up LATEST: of the two due times missed, the latest fired, once.
        assert main[-1].due_at is not None and main[-2].due_at is not None
        assert (main[-1].due_at - main[-2].due_at).total_seconds() == 3 * HOUR
        assert runs_of(store_url, "main") == 4
        # Catch-up SKIP: recorded as missed, nothing started.
        assert skipper[0].state.value == "skipped" and "missed" in skipper[0].message
        assert runs_of(store_url, "skipper") == 0
        # Every firing's run ran, on its own thread.
        for firing in main:
            run = await client.get_run(firing.run_id)
            assert run.thread_id == f"main-{firing.firing_id}"
            assert [e async for e in client.join(firing.run_id)]
            assert (await client.get_run(firing.run_id)).output == 1
    rows = postgres.query(
        store_url, "SELECT thread_id, count(*) FROM runs GROUP BY thread_id HAVING count(*) > 1"
    )
    assert rows == []
