"""Process-level failures: the server killed with SIGKILL mid-run and
restarted on the same file; a worker killed with SIGKILL mid-task."""

from __future__ import annotations

import collections
import pathlib

from cairn import Client, RunState
from tests.e2e.processes import (
    final_run,
    free_port,
    start_server,
    start_worker,
    started_task_ids,
    stopping,
    updates_until,
)


def executions(log: pathlib.Path) -> list[tuple[str, str, str, str]]:
    """(event, task name, task id, pid) per line of a worker_app log."""
    return [tuple(line.split()) for line in log.read_text().splitlines()]  # type: ignore[misc]


async def test_server_sigkill_mid_run_resumes_on_restart(tmp_path: pathlib.Path) -> None:
    db, log, port = tmp_path / "cairn.db", tmp_path / "tasks.log", free_port()
    address = f"127.0.0.1:{port}"
    server = start_server(db, port)
    worker = start_worker(address, log)
    with stopping(worker, server):
        recorded_before_kill: list[str] = []
        async with Client(address) as client:
            events = client.stream(
                "twenty_steps", 20, thread_id="crash", durability="sync", stream_mode="tasks"
            )
            run_id = ""
            async for event in events:
                if event.run is not None:
                    run_id = event.run.run_id
                elif event.data.get("name") == "step" and "result" in event.data:
                    recorded_before_kill.append(event.data["id"])
                    if len(recorded_before_kill) == 10:
                        break
            await events.aclose()
        server.kill()

        server = start_server(db, port)  # same file, same address: recovers the run
        with stopping(server):
            async with Client(address) as client:
                final = [e.run async for e in client.join(run_id) if e.run is not None][-1]
                assert final.state is RunState.SUCCEEDED
                assert final.output == 20

    finished = [task_id for event, name, task_id, _ in executions(log) if event == "end"]
    started = collections.Counter(
        task_id for event, name, task_id, _ in executions(log) if event == "start"
    )
    assert len(set(finished)) == 20
    # Every step whose result was recorded before the kill ran exactly once.
    assert all(started[task_id] == 1 for task_id in recorded_before_kill)
    # At most the step in flight at the kill ran twice.
    assert sum(started.values()) <= 21


async def test_worker_sigkill_mid_task_redispatches_to_second_worker(
    tmp_path: pathlib.Path,
) -> None:
    db, log, port = tmp_path / "cairn.db", tmp_path / "tasks.log", free_port()
    address = f"127.0.0.1:{port}"
    server = start_server(db, port)
    first = start_worker(address, log)
    second = start_worker(address, log)
    by_pid = {first.pid: first, second.pid: second}
    with stopping(first, second, server):
        async with Client(address) as client:
            stalled_on = None
            final = None
            async for event in client.stream(
                "stalling", "job", thread_id="w", durability="sync", stream_mode="custom"
            ):
                if event.mode == "custom" and stalled_on is None:
                    stalled_on = event.data["started_on"]
                    by_pid[stalled_on].kill()
                elif event.run is not None:
                    final = event.run
        assert stalled_on is not None and final is not None
        survivor = next(pid for pid in by_pid if pid != stalled_on)
        assert final.state is RunState.SUCCEEDED
        assert final.output == f"job done by {survivor}"
    starts = [(name, int(pid)) for event, name, _, pid in executions(log) if event == "start"]
    assert starts.count(("stall_once", stalled_on)) == 1
    assert starts.count(("stall_once", survivor)) == 1


async def test_server_sigkill_mid_graph_resumes_without_rerunning_finished_nodes(
    tmp_path: pathlib.Path,
) -> None:
    db, log, port = tmp_path / "cairn.db", tmp_path / "tasks.log", free_port()
    address = f"127.0.0.1:{port}"
    server = start_server(db, port)
    worker = start_worker(address, log)
    with stopping(worker, server):
        async with Client(address) as client:
            run_id, finished_before_kill = await updates_until(
                client, "ten_nodes", {"count": 0, "visited": []}, thread_id="graph-crash", count=5
            )
        server.kill()

        server = start_server(db, port)
        with stopping(server):
            async with Client(address) as client:
                final = await final_run(client, run_id)
                assert final.state is RunState.SUCCEEDED
                assert final.output == {"count": 10, "visited": list(range(10))}

    starts = started_task_ids(log)
    # Ten node tasks finished; at most the one in flight at the kill ran twice.
    assert len(starts) == 10
    assert sum(starts.values()) <= 11
    assert finished_before_kill == ["n0", "n1", "n2", "n3", "n4"]


async def test_server_sigkill_inside_a_subgraph_resumes_it_without_rerunning_finished_nodes(
    tmp_path: pathlib.Path,
) -> None:
    db, log, port = tmp_path / "cairn.db", tmp_path / "tasks.log", free_port()
    address = f"127.0.0.1:{port}"
    server = start_server(db, port)
    worker = start_worker(address, log)
    with stopping(worker, server):
        async with Client(address) as client:
            run_id, inside_before_kill = await updates_until(
                client,
                "nested_nodes",
                {"count": 0, "visited": []},
                thread_id="subgraph-crash",
                count=3,
                subgraphs=True,
            )
        server.kill()

        server = start_server(db, port)
        with stopping(server):
            async with Client(address) as client:
                final = await final_run(client, run_id)
                assert final.state is RunState.SUCCEEDED
                # p0 saw count 0, the subgraph's six nodes counted to 7, p1 saw 7.
                assert final.output == {"count": 8, "visited": [0, 7]}

    starts = started_task_ids(log)
    # Eight node tasks (two outside, six inside); at most the one in flight
    # at the kill ran twice.
    assert len(starts) == 8
    assert sum(starts.values()) <= 9
    assert inside_before_kill == ["s0", "s1", "s2"]
