"""Cross-language runs: a Python entrypoint calls tasks only a TypeScript
worker serves, a TypeScript entrypoint calls tasks only a Python worker
serves, and a Node worker killed with SIGKILL mid-task loses nothing.

Every worker and the server are real processes (tests/e2e/processes.py); the
Node worker is sdk/typescript/test/apps/worker_app.ts.
"""

from __future__ import annotations

import asyncio
import collections
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

from cairn import Client, Command, Run, RunFailedError, RunState
from tests.e2e.processes import (
    Process,
    build_typescript,
    free_port,
    start_cross_language_worker,
    start_node_worker,
    start_server,
    stopping,
)


@pytest.fixture(scope="module", autouse=True)
def compiled_typescript() -> None:
    build_typescript()


def executions(log: pathlib.Path) -> list[tuple[str, str, str, str, str]]:
    """(event, task name, task id, pid, language) per line of a worker log."""
    return [tuple(line.split()) for line in log.read_text().splitlines()]  # type: ignore[misc]


def starts(log: pathlib.Path) -> collections.Counter[tuple[str, str]]:
    """How many times each task started, by (name, language)."""
    return collections.Counter(
        (name, language) for event, name, _, _, language in executions(log) if event == "start"
    )


async def stream_until_stop(
    client: Client, target: str, input: Any, thread_id: str
) -> tuple[Run, list[Any], list[Any]]:
    """Stream a run (custom and updates); returns its last state, custom chunks, updates."""
    custom: list[Any] = []
    updates: list[Any] = []
    final = None
    async for event in client.stream(
        target, input, thread_id=thread_id, stream_mode=["custom", "updates"], durability="sync"
    ):
        if event.run is not None:
            final = event.run
        elif event.mode == "custom":
            custom.append(event.data)
        else:
            updates.append(event.data)
    assert final is not None
    return final, custom, updates


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, pathlib.Path]]:
    """A server, a Python worker and a Node worker, as processes."""
    folder = tmp_path_factory.mktemp("cross")
    port = free_port()
    address = f"127.0.0.1:{port}"
    log = folder / "tasks.log"
    server = start_server(folder / "cairn.db", port)
    with stopping(server):
        python = start_cross_language_worker(address, log)
        with stopping(python):
            node = start_node_worker(address, log)
            with stopping(node):
                yield address, log


async def test_python_entrypoint_calls_typescript_tasks(
    cluster: tuple[str, pathlib.Path],
) -> None:
    address, log = cluster
    async with Client(address) as client:
        run, custom, updates = await stream_until_stop(client, "py_flow", ["a", "b"], "py-ts")
        assert run.state is RunState.INTERRUPTED
        [pending] = run.interrupts
        assert pending.value == {"asked_by": "typescript", "question": "ship it?"}
        assert pending.task_name == "ts_ask"
        assert custom == [
            {"from": "python", "step": "start"},
            {"from": "typescript", "shouting": "a"},
            {"from": "typescript", "shouting": "b"},
        ]
        assert {"ts_shout": "A"} in updates and {"ts_shout": "B"} in updates

        done = await client.invoke("py_flow", Command(resume="yes"), thread_id="py-ts")
    assert done.output == {
        "shouted": ["A", "B"],
        "validation": {"type": "TypeError", "message": "negative value: -1"},
        "fetched": "fetched example.com on attempt 2",
        "answer": "ship it? -> yes",
    }
    ran = starts(log)
    assert ran[("ts_flaky", "typescript")] == 2  # retryable: retried once
    # Not retryable despite its policy: once in the first run, and once more
    # when the resume replays the workflow (failed calls are not recorded).
    assert ran[("ts_validate", "typescript")] == 2
    assert ran[("ts_shout", "typescript")] == 2  # recorded results replayed, not re-run


async def test_typescript_entrypoint_calls_python_tasks(
    cluster: tuple[str, pathlib.Path],
) -> None:
    address, log = cluster
    async with Client(address) as client:
        run, custom, updates = await stream_until_stop(client, "ts_flow", {"text": "cats"}, "ts-py")
        assert run.state is RunState.INTERRUPTED
        [pending] = run.interrupts
        assert pending.value == {"asked_by": "python", "question": "ship it?"}
        assert pending.task_name == "py_ask"
        assert custom == [
            {"from": "typescript", "step": "start"},
            {"from": "python", "summarizing": "cats"},
        ]
        assert {"py_summarize": "summary of 'cats' by python"} in updates

        done = await client.invoke("ts_flow", Command(resume="yes"), thread_id="ts-py")
        assert done.output == {
            "summary": "summary of 'cats' by python",
            "validation": {"type": "ValueError", "message": "negative value: -1"},
            "fetched": "fetched example.com by python",
            "answer": "ship it? -> yes",
        }

        # Uncaught, the Python task's error fails the TypeScript workflow as itself.
        with pytest.raises(RunFailedError) as failure:
            await client.invoke("ts_flow", {"text": "x", "strict": True}, thread_id="ts-py-2")
        assert failure.value.run.error is not None
        assert failure.value.run.error.type == "ValueError"
        assert failure.value.run.error.message == "negative value: -1"

    ran = starts(log)
    assert ran[("py_flaky", "python")] == 2
    # Not retryable: once per run (the first, its resume, the strict run).
    assert ran[("py_validate", "python")] == 3
    assert ran[("py_summarize", "python")] == 2  # the resume replayed its result


async def kill_node_mid_task(
    client: Client, task: str, node: Process, thread_id: str, then: Any
) -> Run:
    """Run py_call on `task`; once the Node worker reports it started, call
    `then()` and SIGKILL the Node worker; returns the run's last state."""
    final = None
    killed = False
    async for event in client.stream(
        "py_call",
        {"task": task, "input": "job"},
        thread_id=thread_id,
        stream_mode="custom",
        durability="sync",
    ):
        if event.mode == "custom" and not killed:
            assert event.data["language"] == "typescript"
            assert event.data["started_on"] == node.pid
            then()
            node.kill()
            killed = True
        elif event.run is not None:
            final = event.run
    assert final is not None
    return final


async def test_killed_node_worker_task_is_redispatched_to_python_worker(
    tmp_path: pathlib.Path,
) -> None:
    port, log = free_port(), tmp_path / "tasks.log"
    address = f"127.0.0.1:{port}"
    server = start_server(tmp_path / "cairn.db", port)
    python = start_cross_language_worker(address, log)  # serves the entrypoint only
    node = start_node_worker(address, log)  # the only one serving shared_step, at first
    spare: list[Process] = []

    def start_python_serving_shared_step() -> None:
        spare.append(start_cross_language_worker(address, log, "--serve-shared"))

    with stopping(node, python, server):
        async with Client(address) as client:
            try:
                final = await kill_node_mid_task(
                    client, "shared_step", node, "killed", start_python_serving_shared_step
                )
            finally:
                for process in spare:
                    process.stop()
    assert final.state is RunState.SUCCEEDED
    assert final.output == f"job done by python {spare[0].pid}"
    ran = [(name, task_id, language) for event, name, task_id, _, language in executions(log)]
    node_start = [r for r in ran if r[0] == "shared_step" and r[2] == "typescript"]
    python_start = [r for r in ran if r[0] == "shared_step" and r[2] == "python"]
    assert len(node_start) == 1 and len(python_start) == 1
    assert node_start[0][1] == python_start[0][1]  # the same task, dispatched again


async def test_killed_node_worker_task_completes_when_node_worker_reconnects(
    tmp_path: pathlib.Path,
) -> None:
    port, log = free_port(), tmp_path / "tasks.log"
    address = f"127.0.0.1:{port}"
    server = start_server(tmp_path / "cairn.db", port)
    python = start_cross_language_worker(address, log)
    node = start_node_worker(address, log)
    with stopping(node, python, server):
        async with Client(address) as client:
            events = kill_node_mid_task(client, "ts_stall_once", node, "reconnect", lambda: None)
            # The run waits, holding nothing in the killed process, until a Node
            # worker serves the task again.
            restarted: list[Process] = []
            try:
                pending = asyncio.ensure_future(events)
                await asyncio.to_thread(node.popen.wait, 10)  # type: ignore[union-attr]
                restarted.append(start_node_worker(address, log))
                final = await asyncio.wait_for(pending, 60)
            finally:
                for process in restarted:
                    process.stop()
    assert final.state is RunState.SUCCEEDED
    assert final.output == f"job done by typescript {restarted[0].pid}"
    ran = [
        (task_id, pid)
        for event, name, task_id, pid, _ in executions(log)
        if event == "start" and name == "ts_stall_once"
    ]
    assert [pid for _, pid in ran] == [str(node.pid), str(restarted[0].pid)]
    assert ran[0][0] == ran[1][0]  # the same task id on both workers
