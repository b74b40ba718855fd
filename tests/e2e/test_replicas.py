"""Several `cairn serve` replicas on one Postgres schema, with worker
processes connected to all of them (DESIGN.md section 7).

The workers run tests/e2e/worker_app.py's `counted_steps`: each task logs
`start|end <run key> <index> <pid>` to a .steps file, so the tests count the
executions of every task of every run across processes.
"""

from __future__ import annotations

import asyncio
import collections
import os
import pathlib
import random
import re
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cairn import Client, RunState
from tests import postgres
from tests.e2e.processes import Process, free_port, serve, start_worker, stopping

LEASE_TTL = 5.0
TAKING_OVER = re.compile(r"taking over (\d+) runs")


@pytest.fixture
def store_url() -> Iterator[str]:
    with postgres.fresh_schema() as url:
        yield url


def start_replica(store_url: str, port: int, replica_id: str, *extra: str) -> Process:
    options = ["--replica-id", replica_id, "--lease-ttl", str(LEASE_TTL), "--shutdown-grace", "5"]
    return serve(store_url, port, *options, *extra)


def start_replicas(
    store_url: str, count: int, *, metrics_ports: list[int] | None = None
) -> tuple[list[str], list[Process]]:
    """Replicas r0, r1, ... on free ports (with /metrics on `metrics_ports`);
    returns their addresses and processes."""
    ports = [free_port() for _ in range(count)]
    replicas = [
        start_replica(
            store_url,
            port,
            f"r{i}",
            *(["--metrics-address", f"127.0.0.1:{metrics_ports[i]}"] if metrics_ports else []),
        )
        for i, port in enumerate(ports)
    ]
    return [f"127.0.0.1:{port}" for port in ports], replicas


def scraped(port: int, metric: str) -> float:
    """The sum of `metric`'s samples on the replica's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
        text = page.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == metric
    )


class Steps:
    """The .steps file the workers write."""

    def __init__(self, log: pathlib.Path) -> None:
        self.path = log.with_suffix(".steps")

    def lines(self) -> list[tuple[str, str, int]]:
        if not self.path.exists():
            return []
        rows = [line.split() for line in self.path.read_text().splitlines()]
        return [(event, key, int(index)) for event, key, index, _pid in rows]

    def starts(self, lines: list[tuple[str, str, int]] | None = None) -> collections.Counter:
        rows = self.lines() if lines is None else lines
        return collections.Counter((key, index) for event, key, index in rows if event == "start")


async def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll a condition that no event announces (a file, a database row)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def owned_by(store_url: str, replica_id: str) -> int:
    rows = postgres.query(
        store_url,
        "SELECT count(*) FROM runs WHERE owner_id = $1 AND state IN ('pending', 'running')",
        replica_id,
    )
    return int(rows[0][0])


def server_errors(replicas: list[Process]) -> str:
    """The error lines and tracebacks the replicas logged."""
    found = []
    for process in replicas:
        lines = process.lines
        for i, line in enumerate(lines):
            if "ERROR" in line or "Traceback" in line:
                found.extend(lines[i : i + 25])
    return "\n".join(found[:200])


def clients_for(addresses: list[str]) -> list[Client]:
    """One client per replica, each listing the others after its own."""
    return [Client(addresses[i:] + addresses[:i]) for i in range(len(addresses))]


def check_no_finished_step_reran(steps: Steps, runs: int, count: int) -> collections.Counter:
    """Every step ran, and a step ran again only while it was its run's
    newest: in sync durability the next step starts only once a result is
    recorded, so a step that ran again after a later one had started would
    be a recorded result run twice. Returns the executions per (key, index)."""
    lines = steps.lines()
    starts = steps.starts(lines)
    assert set(starts) == {(f"run{r}", i) for r in range(runs) for i in range(count)}
    newest: dict[str, int] = {}
    seen: set[tuple[str, int]] = set()
    for event, key, index in lines:
        if event != "start":
            continue
        if (key, index) in seen:
            assert newest[key] == index, f"{key} step {index} ran again after step {newest[key]}"
        seen.add((key, index))
        newest[key] = max(index, newest.get(key, -1))
    return starts


async def run_all(clients: list[Client], runs: int, count: int) -> list[object]:
    async def one(r: int) -> object:
        return await clients[r % len(clients)].invoke(
            "counted_steps",
            {"key": f"run{r}", "steps": count},
            thread_id=f"thread{r}",
            durability="sync",
        )

    return await asyncio.gather(*(one(r) for r in range(runs)))


@pytest.mark.timeout(400)
@pytest.mark.parametrize("connected", ["to-every-replica", "to-one-replica-each"])
async def test_sigkill_of_a_replica_under_load_loses_nothing(
    store_url: str, tmp_path: pathlib.Path, connected: str
) -> None:
    runs, count = 200, 10
    addresses, replicas = start_replicas(store_url, 3)
    log = tmp_path / "tasks.log"
    steps = Steps(log)
    # Connected to one replica each, the workers are on r1 and r2: every task
    # of r0's runs, and some of the others', goes through a relay.
    worker_addresses = (
        [",".join(addresses)] * 2 if connected == "to-every-replica" else addresses[1:]
    )
    workers = [start_worker(address, log) for address in worker_addresses]
    with stopping(*workers, *replicas):
        clients = clients_for(addresses)
        everything = asyncio.ensure_future(run_all(clients, runs, count))
        # A random moment while the runs are under way.
        threshold = random.randint(runs, runs * count // 2)
        await wait_until(lambda: len(steps.lines()) >= threshold, 120, "steps to run")
        os.kill(replicas[0].pid, signal.SIGKILL)
        killed = time.monotonic()
        await wait_until(lambda: owned_by(store_url, "r0") == 0, 60, "the takeover")
        takeover = time.monotonic() - killed
        try:
            results = await asyncio.wait_for(everything, 300)
        except Exception as exc:
            raise AssertionError(server_errors(replicas)) from exc
        for client in clients:
            await client.close()
        moves = [
            sum(int(m.group(1)) for m in map(TAKING_OVER.search, r.lines) if m) for r in replicas
        ]
        print(f"\ntakeover of r0's runs took {takeover:.2f} s (lease ttl {LEASE_TTL} s)")
        print(f"runs taken over by r0, r1, r2: {moves}")

    for r, run in enumerate(results):
        assert run.state is RunState.SUCCEEDED, run  # type: ignore[attr-defined]
        # Every step's result reached the run once, in order.
        assert run.output == [f"run{r}:{i}" for i in range(count)]  # type: ignore[attr-defined]
    starts = check_no_finished_step_reran(steps, runs, count)
    again = sum(starts.values()) - runs * count
    print(f"steps run again (each was in flight when its replica stopped): {again}")
    rows = postgres.query(store_url, "SELECT count(*) FROM runs WHERE state <> 'succeeded'")
    assert rows == [(0,)]


@pytest.mark.timeout(300)
async def test_sigterm_hands_a_replicas_runs_over_without_failing_any(
    store_url: str, tmp_path: pathlib.Path
) -> None:
    runs, count = 60, 10
    addresses, replicas = start_replicas(store_url, 2)
    log = tmp_path / "tasks.log"
    steps = Steps(log)
    workers = [start_worker(",".join(addresses), log) for _ in range(2)]
    with stopping(*workers, *replicas):
        clients = clients_for(addresses)
        everything = asyncio.ensure_future(run_all(clients, runs, count))
        await wait_until(lambda: len(steps.lines()) >= runs * 2, 120, "steps to run")
        assert owned_by(store_url, "r0") > 0
        assert replicas[0].stop(timeout=30) == 0  # SIGTERM, then its exit code
        results = await asyncio.wait_for(everything, 300)
        for client in clients:
            await client.close()
        assert "released" in "\n".join(replicas[0].lines)

    for r, run in enumerate(results):
        assert run.state is RunState.SUCCEEDED, run  # type: ignore[attr-defined]
        assert run.output == [f"run{r}:{i}" for i in range(count)]  # type: ignore[attr-defined]
    check_no_finished_step_reran(steps, runs, count)


async def test_a_paused_replica_cannot_write_to_a_run_it_lost(
    store_url: str, tmp_path: pathlib.Path
) -> None:
    metrics = [free_port(), free_port()]
    addresses, replicas = start_replicas(store_url, 2, metrics_ports=metrics)
    log = tmp_path / "tasks.log"
    steps = Steps(log)
    worker = start_worker(",".join(addresses), log)
    with stopping(worker, *replicas):
        async with Client(addresses[0]) as first, Client(addresses[1]) as second:
            job = {"key": "run0", "steps": 4, "gate": 1}
            invoked = asyncio.ensure_future(
                first.invoke("counted_steps", job, thread_id="paused", durability="sync")
            )
            await wait_until(lambda: ("run0", 1) in steps.starts(), 60, "the gated step")
            os.kill(replicas[0].pid, signal.SIGSTOP)
            try:
                await wait_until(lambda: owned_by(store_url, "r1") == 1, 60, "the takeover")
                # r1 runs the gated step again: two executions wait at the gate.
                await wait_until(lambda: steps.starts()[("run0", 1)] == 2, 60, "the re-dispatch")
            finally:
                os.kill(replicas[0].pid, signal.SIGCONT)
            # Both executions finish: r0's copy reports to r0, which may no longer write.
            log.with_suffix(".run0.go").touch()
            invoked.cancel()
            (run,) = await second.list_runs("paused")
            final = [e.run async for e in second.join(run.run_id) if e.run is not None][-1]
            assert final.state is RunState.SUCCEEDED
            assert final.output == [f"run0:{i}" for i in range(4)]
            await wait_until(
                lambda: "taken over by another replica" in "\n".join(replicas[0].lines),
                30,
                "r0 to find out",
            )
            # One run, and nothing r0 did after the pause shows in the thread.
            assert [r.state for r in await second.list_runs("paused")] == [RunState.SUCCEEDED]
            # The operator sees it: r1 took the run over, and r0 holds no lease
            # (it dropped the run, by a refused write or its lease check).
            assert scraped(metrics[1], "cairn_lease_takeovers_total") == 1
            assert scraped(metrics[0], "cairn_lease_takeovers_total") == 0
            assert scraped(metrics[1], "cairn_fencing_rejections_total") == 0
            assert scraped(metrics[0], "cairn_leases_held") == 0

    starts = steps.starts()
    assert starts[("run0", 0)] == 1  # recorded before the pause: never again
    assert starts[("run0", 1)] == 2
    assert starts[("run0", 2)] == starts[("run0", 3)] == 1


@pytest.mark.timeout(300)
async def test_runs_in_flight_survive_a_postgres_restart(
    store_url: str, tmp_path: pathlib.Path
) -> None:
    runs, count = 40, 4
    addresses, replicas = start_replicas(store_url, 2)
    log = tmp_path / "tasks.log"
    steps = Steps(log)
    worker = start_worker(",".join(addresses), log, "--max-concurrency", str(runs))
    with stopping(worker, *replicas):
        clients = clients_for(addresses)

        async def one(r: int) -> object:
            job = {"key": f"run{r}", "steps": count, "gate": 1}
            return await clients[r % 2].invoke(
                "counted_steps", job, thread_id=f"thread{r}", durability="sync"
            )

        everything = asyncio.ensure_future(asyncio.gather(*(one(r) for r in range(runs))))
        gated = {(f"run{r}", 1) for r in range(runs)}
        await wait_until(lambda: gated <= set(steps.starts()), 120, "every run at its gate")
        # Every run has a recorded step and one in flight. The database goes
        # away for longer than a lease, so the replicas' leases lapse too.
        await asyncio.to_thread(postgres.restart_server, LEASE_TTL + 1)
        for r in range(runs):
            log.with_suffix(f".run{r}.go").touch()
        try:
            results = await asyncio.wait_for(everything, 240)
        except Exception as exc:
            raise AssertionError(server_errors(replicas)) from exc
        for client in clients:
            await client.close()

    for r, run in enumerate(results):
        assert run.state is RunState.SUCCEEDED, run  # type: ignore[attr-defined]
        assert run.output == [f"run{r}:{i}" for i in range(count)]  # type: ignore[attr-defined]
    check_no_finished_step_reran(steps, runs, count)
    rows = postgres.query(store_url, "SELECT count(*) FROM runs WHERE state <> 'succeeded'")
    assert rows == [(0,)]
