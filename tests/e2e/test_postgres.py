"""`cairn serve --store postgresql://...` as a process, with a real worker
process: a functional run with an interrupt and a resume, a graph run, a
restart, and a SIGKILL mid-graph, all on a fresh schema of the real Postgres
server (dropped afterwards)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from cairn import Client, Command, RunState
from tests import postgres
from tests.e2e.processes import (
    Process,
    final_run,
    free_port,
    serve,
    start_worker,
    started_task_ids,
    stopping,
    updates_until,
)

ESSAY = "An essay about topic: cats"


@pytest.fixture
def store_url() -> Iterator[str]:
    with postgres.fresh_schema() as url:
        yield url


def start_server(store_url: str, port: int) -> Process:
    return serve(store_url, port, "--thread-ttl", "86400")


async def test_interrupt_resume_and_graph_runs_on_postgres_survive_a_restart(
    store_url: str, tmp_path: pathlib.Path
) -> None:
    log, port = tmp_path / "tasks.log", free_port()
    address = f"127.0.0.1:{port}"
    server = start_server(store_url, port)
    worker = start_worker(address, log)
    with stopping(worker, server):
        assert "postgresql://" in server.wait_for_line("cairn serving on")
        async with Client(address) as client:
            paused = await client.invoke(
                "essay", {"topic": "cats"}, thread_id="essay", durability="sync"
            )
            assert paused.state is RunState.INTERRUPTED
            assert paused.interrupts[0].value["essay"] == ESSAY
            done = await client.invoke("essay", Command(resume=True), thread_id="essay")
            assert done.state is RunState.SUCCEEDED
            assert done.output == {"essay": ESSAY, "is_approved": True}

            graph = await client.invoke(
                "ten_nodes", {"count": 0, "visited": []}, thread_id="graph", durability="async"
            )
            assert graph.output == {"count": 10, "visited": list(range(10))}
            history = await client.get_state_history("graph")
            assert len(history) == 12  # input, then one checkpoint per node and the start

        assert server.stop() == 0
        server = start_server(store_url, port)
        with stopping(server):
            async with Client(address) as client:
                state = await client.get_state("graph")
                assert state.values == {"count": 10, "visited": list(range(10))}
                assert len(await client.get_state_history("graph")) == len(history)
                runs = await client.list_runs("essay")  # newest first: the resume, the first
                assert [r.state for r in runs] == [RunState.SUCCEEDED, RunState.INTERRUPTED]

    # write_essay ran once: the resume replayed its recorded result.
    assert sum(1 for line in log.read_text().splitlines() if " write_essay " in line) == 1
    # What the user saw is what Postgres holds.
    rows = postgres.query(store_url, "SELECT COUNT(*) FROM checkpoints WHERE thread_id = 'graph'")
    assert rows == [(len(history),)]


async def test_server_sigkill_mid_graph_on_postgres_resumes_without_rerunning_nodes(
    store_url: str, tmp_path: pathlib.Path
) -> None:
    log, port = tmp_path / "tasks.log", free_port()
    address = f"127.0.0.1:{port}"
    server = start_server(store_url, port)
    worker = start_worker(address, log)
    with stopping(worker, server):
        async with Client(address) as client:
            run_id, finished_before_kill = await updates_until(
                client, "ten_nodes", {"count": 0, "visited": []}, thread_id="graph-crash", count=5
            )
        server.kill()

        server = start_server(store_url, port)  # same schema: recovers the run
        with stopping(server):
            async with Client(address) as client:
                final = await final_run(client, run_id)
                assert final.state is RunState.SUCCEEDED
                assert final.output == {"count": 10, "visited": list(range(10))}

    started = started_task_ids(log)
    assert len(started) == 10
    assert sum(started.values()) <= 11  # at most the node in flight at the kill ran twice
    assert finished_before_kill == ["n0", "n1", "n2", "n3", "n4"]
