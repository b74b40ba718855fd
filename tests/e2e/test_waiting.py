"""A run that no connected worker can serve says so (issue 15, item 4): in
GetRun, ListRuns, its event stream, the server's log and `cairn runs`, naming
the entrypoint or task it waits on, also after a server restart; and it goes
on by itself once a worker serving that name connects."""

from __future__ import annotations

import asyncio
import pathlib
import subprocess
import sys
from collections.abc import AsyncIterator

from cairn import Client, Run, RunEvent, RunState, WaitReason
from tests.e2e.processes import BIN, Process, free_port, start_server, stopping

WAITING_APP = pathlib.Path(__file__).with_name("waiting_app.py")


def start_app_worker(address: str, *extra: str) -> Process:
    process = Process([sys.executable, str(WAITING_APP), "--address", address, *extra]).start()
    process.wait_for_line("worker ready")
    return process


def waits(run: Run) -> list[tuple[WaitReason, str]]:
    return [(w.reason, w.task_name) for w in run.waiting]


async def next_run(events: AsyncIterator[RunEvent], until: list[tuple[WaitReason, str]]) -> Run:
    """The run of the first lifecycle event whose `waiting` is `until`
    (within 30 s: a wait is reported within about a second)."""

    async def find() -> Run:
        async for event in events:
            run = event.run
            if run is not None and waits(run) == until:
                return run
            assert run is None or run.state is RunState.RUNNING, run
        raise AssertionError(f"the run ended without waiting on {until}")

    return await asyncio.wait_for(find(), 30)


def cairn_runs(address: str, thread_id: str) -> str:
    done = subprocess.run(
        [str(BIN / "cairn"), "runs", thread_id, "--address", address],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


async def test_a_run_of_an_entrypoint_whose_worker_stopped_says_it_waits_for_one(
    tmp_path: pathlib.Path,
) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    server = start_server(tmp_path / "cairn.db", port)
    with stopping(server):
        first = start_app_worker(address)  # registers `greet`, then stops
        with stopping(first):
            pass
        assert first.popen is not None and first.popen.poll() is not None

        async with Client(address) as client:
            events = client.stream("greet", "cats", thread_id="t1", stream_mode="updates")
            run = await next_run(events, [(WaitReason.NO_WORKER, "greet")])
            assert run.waiting[0].task_id and run.waiting[0].since is not None
            server.wait_for_line(f"run {run.run_id} on thread t1 waits: no connected worker")

            assert waits(await client.get_run(run.run_id)) == [(WaitReason.NO_WORKER, "greet")]
            listed = await client.list_runs("t1")
            assert [waits(r) for r in listed] == [[(WaitReason.NO_WORKER, "greet")]]
            table = cairn_runs(address, "t1")
            assert "WAITING" in table.splitlines()[0]
            assert "no worker serves 'greet' since" in table

            second = start_app_worker(address)
            with stopping(second):
                ends = [e.run async for e in events if e.run is not None]
                assert ends[-1].state is RunState.SUCCEEDED
                assert ends[-1].output == "hello cats"
                assert ends[-1].waiting == ()
                assert (await client.get_run(run.run_id)).waiting == ()
                assert "no worker" not in cairn_runs(address, "t1")


async def test_a_task_no_worker_serves_is_named_and_reported_again_after_a_restart(
    tmp_path: pathlib.Path,
) -> None:
    db, port = tmp_path / "cairn.db", free_port()
    address = f"127.0.0.1:{port}"
    server = start_server(db, port)
    worker = start_app_worker(address)  # serves `asks_missing`, not `missing_step`
    with stopping(worker, server):
        async with Client(address) as client:
            events = client.stream(
                "asks_missing", "cats", thread_id="t2", durability="sync", stream_mode="updates"
            )
            run = await next_run(events, [(WaitReason.NO_WORKER, "missing_step")])
            await events.aclose()
            stored = await client.list_runs("t2")
            assert [waits(r) for r in stored] == [[(WaitReason.NO_WORKER, "missing_step")]]
        server.kill()
    # The restarted server runs the entrypoint again, and no worker serves
    # it now: the run says so, instead of what it waited on before.
    server = start_server(db, port)
    with stopping(server):
        async with Client(address) as client:
            events = client.join(run.run_id)
            await next_run(events, [(WaitReason.NO_WORKER, "asks_missing")])
            assert waits(await client.get_run(run.run_id)) == [
                (WaitReason.NO_WORKER, "asks_missing")
            ]
            worker = start_app_worker(address, "--serve-missing")
            with stopping(worker):
                ends = [e.run async for e in events if e.run is not None]
                assert ends[-1].state is RunState.SUCCEEDED
                assert ends[-1].output == "cats done"
                assert ends[-1].waiting == ()
