"""`cairn runs` without a thread against a real `cairn serve`: the runs of
every thread of the namespace with a THREAD column, `--state`, and
`--waiting` for the runs that wait on a worker, until one runs them."""

from __future__ import annotations

import asyncio
import json
import pathlib
import subprocess
import sys

from cairn import Client, Run, RunState
from tests.e2e.processes import BIN, Process, free_port, start_server, stopping

WAITING_APP = pathlib.Path(__file__).with_name("waiting_app.py")
HEADER = ["RUN", "THREAD", "TARGET", "STATE", "CREATED", "WAITING", "OUTPUT", "/", "ERROR"]


def start_app_worker(address: str) -> Process:
    """A worker serving waiting_app.py's `greet`."""
    process = Process([sys.executable, str(WAITING_APP), "--address", address]).start()
    process.wait_for_line("worker ready")
    return process


def cairn_runs(address: str, *args: str) -> list[str]:
    """The lines `cairn runs ARGS` prints."""
    done = subprocess.run(
        [str(BIN / "cairn"), "runs", *args, "--address", address],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


def threads_of(lines: list[str]) -> list[str]:
    """The THREAD column of a table whose header is HEADER."""
    assert lines[0].split() == HEADER, lines
    return [line.split()[1] for line in lines[1:]]


async def test_cairn_runs_lists_the_namespaces_runs_and_those_waiting_for_a_worker(
    tmp_path: pathlib.Path,
) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    server = start_server(tmp_path / "cairn.db", port)
    with stopping(server):
        async with Client(address) as client:
            worker = start_app_worker(address)
            with stopping(worker):
                for thread_id in ("t1", "t2"):
                    await client.invoke("greet", thread_id, thread_id=thread_id)

            # No worker serves `greet` now; sync durability: the run's row
            # is stored before the event that says it waits.
            events = client.stream("greet", "t3", thread_id="t3", durability="sync")

            async def first_waiting() -> Run:
                async for event in events:
                    if event.run is not None and event.run.waiting:
                        return event.run
                raise AssertionError("the run ended without waiting")

            waiting = await asyncio.wait_for(first_waiting(), 30)

            every = cairn_runs(address)
            assert threads_of(every) == ["t3", "t2", "t1"]
            assert "no worker serves 'greet' since" in every[1]
            only_waiting = cairn_runs(address, "--waiting")
            assert threads_of(only_waiting) == ["t3"]
            assert only_waiting[1].split()[:4] == [waiting.run_id, "t3", "greet", "running"]
            assert threads_of(cairn_runs(address, "--state", "succeeded")) == ["t2", "t1"]
            assert threads_of(cairn_runs(address, "--namespace", "team-a")) == []
            (record,) = json.loads("\n".join(cairn_runs(address, "--waiting", "--json")))
            assert (record["run_id"], record["thread_id"]) == (waiting.run_id, "t3")
            assert record["waiting"][0]["task_name"] == "greet"
            one_thread = cairn_runs(address, "t1")  # as before: no THREAD column
            assert one_thread[0].split()[:2] == ["RUN", "TARGET"] and len(one_thread) == 2

            worker = start_app_worker(address)
            with stopping(worker):
                ends = [e.run async for e in events if e.run is not None]
                assert (ends[-1].state, ends[-1].output) == (RunState.SUCCEEDED, "hello t3")
                assert threads_of(cairn_runs(address, "--waiting")) == []
                assert threads_of(cairn_runs(address, "--state", "succeeded")) == [
                    "t3",
                    "t2",
                    "t1",
                ]
