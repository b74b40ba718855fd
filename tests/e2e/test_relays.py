"""Relays (api/relay.py): a worker connected to one replica serves the runs
that other replicas drive, through its replica."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
from collections.abc import Iterator

import pytest

from cairn import Client, Command, RunState
from tests import postgres
from tests.e2e.processes import start_worker, started_task_ids, stopping
from tests.e2e.test_replicas import Steps, server_errors, start_replicas, wait_until


@pytest.fixture
def store_url() -> Iterator[str]:
    with postgres.fresh_schema() as url:
        yield url


@pytest.mark.timeout(120)
async def test_a_worker_on_one_replica_runs_the_tasks_of_another(
    store_url: str, tmp_path: pathlib.Path
) -> None:
    runs, count = 20, 5
    addresses, replicas = start_replicas(store_url, 2)
    log = tmp_path / "tasks.log"
    steps = Steps(log)
    worker = start_worker(addresses[1], log)  # to r1 only
    with stopping(worker, *replicas):
        async with Client(addresses[0]) as client:  # to r0 only
            jobs = [
                client.invoke(
                    "counted_steps",
                    {"key": f"run{r}", "steps": count},
                    thread_id=f"thread{r}",
                    durability="sync",
                )
                for r in range(runs)
            ]
            try:
                results = await asyncio.wait_for(asyncio.gather(*jobs), 90)
            except Exception as exc:
                raise AssertionError(server_errors(replicas)) from exc
            owners = postgres.query(store_url, "SELECT DISTINCT owner_id FROM runs")
        assert "relaying tasks of replica r0" in "\n".join(replicas[1].lines)

    # r0 drove every run; r1's worker ran every task of them, once.
    assert owners == [("r0",)]
    for r, run in enumerate(results):
        assert run.state is RunState.SUCCEEDED
        assert run.output == [f"run{r}:{i}" for i in range(count)]
    starts = steps.starts()
    assert set(starts) == {(f"run{r}", i) for r in range(runs) for i in range(count)}
    assert set(starts.values()) == {1}


@pytest.mark.timeout(120)
async def test_a_relayed_task_whose_worker_dies_runs_again_on_another(
    store_url: str, tmp_path: pathlib.Path
) -> None:
    addresses, replicas = start_replicas(store_url, 2)
    log = tmp_path / "tasks.log"
    steps = Steps(log)
    r1 = addresses[1]
    first = start_worker(r1, log)
    second = None
    with stopping(first, *replicas):
        async with Client(addresses[0]) as client:
            job = {"key": "run0", "steps": 3, "gate": 1}
            invoked = asyncio.ensure_future(
                client.invoke("counted_steps", job, thread_id="t", durability="sync")
            )
            await wait_until(lambda: ("run0", 1) in steps.starts(), 60, "the gated step")
            os.kill(first.pid, signal.SIGKILL)
            log.with_suffix(".run0.go").touch()
            second = start_worker(r1, log)
            try:
                run = await asyncio.wait_for(invoked, 90)
            except Exception as exc:
                raise AssertionError(server_errors(replicas)) from exc
            finally:
                second.stop()

    assert run.state is RunState.SUCCEEDED
    assert run.output == ["run0:0", "run0:1", "run0:2"]
    starts = steps.starts()
    assert starts[("run0", 0)] == 1  # recorded before the worker died
    assert starts[("run0", 1)] == 2  # in flight when it died: run again
    assert starts[("run0", 2)] == 1


@pytest.mark.timeout(120)
async def test_interrupts_resumes_and_graph_nodes_go_through_a_relay(
    store_url: str, tmp_path: pathlib.Path
) -> None:
    addresses, replicas = start_replicas(store_url, 2)
    log = tmp_path / "tasks.log"
    worker = start_worker(addresses[1], log)  # to r1 only
    with stopping(worker, *replicas):
        async with Client(addresses[0]) as client:  # to r0 only
            paused = await client.invoke(
                "essay", {"topic": "cats"}, thread_id="essay", durability="sync"
            )
            assert paused.state is RunState.INTERRUPTED
            assert paused.interrupts[0].value["essay"] == "An essay about topic: cats"
            done = await client.invoke("essay", Command(resume=True), thread_id="essay")
            assert done.state is RunState.SUCCEEDED
            assert done.output == {"essay": "An essay about topic: cats", "is_approved": True}

            graph = await client.invoke(
                "ten_nodes", {"count": 0, "visited": []}, thread_id="graph", durability="sync"
            )
            assert graph.state is RunState.SUCCEEDED
            assert graph.output == {"count": 10, "visited": list(range(10))}
            owners = postgres.query(store_url, "SELECT DISTINCT owner_id FROM runs")

    assert owners == [("r0",)]
    # r1's worker ran write_essay and the ten nodes, each once: the resume
    # replayed write_essay's recorded result.
    names = [line.split()[1] for line in log.read_text().splitlines() if line.startswith("start")]
    assert sorted(names) == [f"ten_nodes:n{i}" for i in range(10)] + ["write_essay"]
    assert set(started_task_ids(log).values()) == {1}
