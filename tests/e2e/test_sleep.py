"""Durable time across crashes (issue 20): a run sleeping an hour on the
service's clock (moved through CAIRN_CLOCK_FILE, so nothing waits for real)
survives a SIGKILL of its server, wakes once at its due time, and does not run
the steps before the sleep again; on Postgres another replica wakes it when
the one it slept on is gone, and answers an interrupt that timed out there,
once."""

from __future__ import annotations

import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest

from cairn import Client, RunState, WaitReason
from cairn_server.timers import CLOCK_FILE_ENV, OffsetClock
from tests import postgres
from tests.e2e.processes import BIN, Process, free_port, serve, stopping
from tests.timers.sleepers import latest_run, outcome, start_sleeper

SLEEP_APP = pathlib.Path(__file__).with_name("sleep_app.py")
HOUR = 3600.0


def start_sleep_worker(address: str, log: pathlib.Path, clock_file: pathlib.Path) -> Process:
    command = [sys.executable, str(SLEEP_APP), "--address", address, "--log", str(log)]
    process = Process(command, env={CLOCK_FILE_ENV: str(clock_file)}).start()
    process.wait_for_line("worker ready")
    return process


def cairn(*args: str) -> str:
    done = subprocess.run(
        [str(BIN / "cairn"), *args], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def executions(log: pathlib.Path) -> list[tuple[str, float]]:
    """(what ran, the service clock then) from the worker's log."""
    lines = [line.split() for line in log.read_text().splitlines()]
    return [(what, float(at)) for what, at in lines]


def ran(log: pathlib.Path) -> list[str]:
    return [what for what, _ in executions(log)]


@pytest.fixture
def clock_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "clock"
    path.write_text("0")
    return path


async def test_a_sleep_survives_a_sigkill_and_wakes_once_when_due(
    tmp_path: pathlib.Path, clock_file: pathlib.Path
) -> None:
    db, log, port = tmp_path / "cairn.db", tmp_path / "ran.log", free_port()
    address, env = f"127.0.0.1:{port}", {CLOCK_FILE_ENV: str(clock_file)}
    server = serve(f"sqlite:///{db}", port, env=env)
    worker = start_sleep_worker(address, log, clock_file)
    with stopping(worker):
        try:
            async with Client(address) as client:
                run = await start_sleeper(client, "reminder", "ada", "t-kill")
                [timer] = run.waiting
                assert timer.until is not None
                due = timer.until.timestamp()
            server.kill()
            server = serve(f"sqlite:///{db}", port, env=env)
            async with Client(address) as client:
                restarted = await client.get_run(run.run_id)
                assert restarted.state is RunState.RUNNING
                assert [(w.reason, w.until) for w in restarted.waiting] == [
                    (WaitReason.TIMER, timer.until)
                ]
                # The restart resumed nothing: the run sleeps on.
                assert ran(log) == ["enter", "draft-ada"]
                table = cairn("runs", "t-kill", "--address", address)
                assert f"'reminder' sleeps until {timer.until:%Y-%m-%d %H:%M:%S}" in table
                OffsetClock(clock_file).advance(HOUR)
                done = await outcome(client, run.run_id)
            assert done.state is RunState.SUCCEEDED
            assert done.output == ["DRAFT ADA", "SEND ADA"]
            # Woken once, not before its due time; the draft did not run again.
            assert ran(log) == ["enter", "draft-ada", "enter", "send-ada"]
            woke_at = executions(log)[2][1]
            assert woke_at >= due
        finally:
            server.stop()


@pytest.fixture
def store_url() -> Iterator[str]:
    with postgres.fresh_schema() as url:
        yield url


async def test_on_postgres_another_replica_wakes_a_run_whose_replica_died(
    store_url: str, tmp_path: pathlib.Path, clock_file: pathlib.Path
) -> None:
    log, env = tmp_path / "ran.log", {CLOCK_FILE_ENV: str(clock_file)}
    ports = [free_port(), free_port()]
    addresses = [f"127.0.0.1:{port}" for port in ports]
    options = ["--lease-ttl", "2"]
    first = serve(store_url, ports[0], "--replica-id", "r0", *options, env=env)
    second = serve(store_url, ports[1], "--replica-id", "r1", *options, env=env)
    worker = start_sleep_worker(",".join(addresses), log, clock_file)
    with stopping(worker, second, first):
        async with Client(addresses[0]) as client:
            run = await start_sleeper(client, "reminder", "bo", "t-pg")
        first.kill()
        OffsetClock(clock_file).advance(HOUR)
        async with Client(addresses[1]) as client:
            done = await outcome(client, run.run_id)
        assert done.state is RunState.SUCCEEDED
        assert done.output == ["DRAFT BO", "SEND BO"]
        assert ran(log) == ["enter", "draft-bo", "enter", "send-bo"]
        second.wait_for_line(f"resuming run {run.run_id}")


async def test_on_postgres_an_interrupt_timeout_outlives_its_replica_and_fires_once(
    store_url: str, tmp_path: pathlib.Path, clock_file: pathlib.Path
) -> None:
    log, env = tmp_path / "ran.log", {CLOCK_FILE_ENV: str(clock_file)}
    ports = [free_port() for _ in range(3)]
    addresses = [f"127.0.0.1:{port}" for port in ports]
    replicas = [
        serve(store_url, port, "--replica-id", f"r{n}", "--lease-ttl", "2", env=env)
        for n, port in enumerate(ports)
    ]
    worker = start_sleep_worker(",".join(addresses), log, clock_file)
    with stopping(worker, *replicas):
        async with Client(addresses[0]) as client:
            paused = await client.invoke("approval", "refund", thread_id="t-timeout")
        assert paused.state is RunState.INTERRUPTED
        [pending] = paused.interrupts
        assert pending.timeout is not None
        replicas[0].kill()
        OffsetClock(clock_file).advance(HOUR)
        async with Client(addresses[1:]) as client:
            done = await latest_run(client, "t-timeout", 2)
            assert done.output == "refund: auto"
            # Two replicas saw it due; one answered it, once.
            assert [r.state for r in await client.list_runs("t-timeout")] == [
                RunState.SUCCEEDED,
                RunState.INTERRUPTED,
            ]
        assert ran(log) == ["ask", "ask"]
