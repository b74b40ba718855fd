"""A second run on a busy thread: the four multitask strategies, on one
server (SQLite) and across two replicas of one Postgres schema."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cairn import Client, RunNotFoundError, RunState, ThreadBusyError, Worker, entrypoint, task
from cairn_server.server import CairnServer, ServerConfig, create_server
from tests import postgres

gate = threading.Event()


@task
def wait_for_gate(x: str) -> str:
    gate.wait(30)
    return x


@entrypoint()
def gated(x: str) -> str:
    return wait_for_gate(x).result()


@task
def shout(x: str) -> str:
    return x.upper()


@entrypoint()
def quick(x: str) -> str:
    return shout(x).result()


FUNCTIONS = [wait_for_gate, gated, shout, quick]


async def checkpoint_ids(client: Client, thread_id: str) -> set[str]:
    history = await client.get_state_history(thread_id)
    return {s.config["configurable"]["checkpoint_id"] for s in history}


async def start_blocked(client: Client, thread_id: str) -> str:
    """A run of `gated` that waits at the gate; returns its id."""
    gate.clear()
    events = client.stream(gated, "first", thread_id=thread_id, stream_mode="tasks")
    run_id = ""
    async for event in events:
        if event.run is not None:
            run_id = event.run.run_id
        if event.data and event.data.get("name") == "wait_for_gate":
            break
    await events.aclose()
    return run_id


async def test_reject_is_the_default(client: Client, start_worker: Any) -> None:
    await start_worker(FUNCTIONS)
    await start_blocked(client, "t")
    with pytest.raises(ThreadBusyError):
        await client.invoke(quick, "second", thread_id="t")
    with pytest.raises(ThreadBusyError):
        await client.invoke(quick, "second", thread_id="t", multitask_strategy="reject")
    gate.set()


async def test_enqueue_starts_once_the_active_run_ends(client: Client, start_worker: Any) -> None:
    await start_worker(FUNCTIONS)
    first = await start_blocked(client, "t")
    second = asyncio.ensure_future(
        client.invoke(quick, "second", thread_id="t", multitask_strategy="enqueue")
    )
    gate.set()
    done = await asyncio.wait_for(second, 30)
    assert done.output == "SECOND"
    ended = await client.get_run(first)
    assert ended.state is RunState.SUCCEEDED
    # The queued run was created only once the first had ended.
    assert ended.updated_at is not None and done.created_at is not None
    assert done.created_at >= ended.updated_at
    assert [r.run_id for r in await client.list_runs("t")] == [done.run_id, first]


async def test_interrupt_stops_the_active_run_and_keeps_what_it_stored(
    client: Client, start_worker: Any
) -> None:
    await start_worker(FUNCTIONS)
    first = await start_blocked(client, "t")
    before = await checkpoint_ids(client, "t")
    assert before
    done = await client.invoke(quick, "second", thread_id="t", multitask_strategy="interrupt")
    gate.set()
    assert done.output == "SECOND"
    assert (await client.get_run(first)).state is RunState.CANCELLED
    assert before < await checkpoint_ids(client, "t")


async def test_rollback_deletes_the_active_run_as_if_it_never_ran(
    client: Client, start_worker: Any
) -> None:
    await start_worker(FUNCTIONS)
    before = await client.invoke(quick, "zero", thread_id="t")
    kept = await checkpoint_ids(client, "t")
    first = await start_blocked(client, "t")
    doomed = await checkpoint_ids(client, "t") - kept
    assert doomed
    done = await client.invoke(quick, "second", thread_id="t", multitask_strategy="rollback")
    gate.set()
    assert done.output == "SECOND"
    with pytest.raises(RunNotFoundError):
        await client.get_run(first)
    assert [r.run_id for r in await client.list_runs("t")] == [done.run_id, before.run_id]
    # The first run's checkpoints are gone; the earlier run's stay.
    after = await checkpoint_ids(client, "t")
    assert kept < after
    assert not doomed & after


@pytest.fixture
async def two_replicas() -> AsyncIterator[tuple[str, str]]:
    with postgres.fresh_schema() as url:
        servers: list[CairnServer] = []
        addresses: list[str] = []
        workers: list[tuple[Worker, asyncio.Task[None]]] = []
        try:
            for name in ("a", "b"):
                config = ServerConfig(
                    address="127.0.0.1:0", store_url=url, replica_id=name, lease_ttl=2.0
                )
                server, port = await create_server(config)
                servers.append(server)
                addresses.append(f"127.0.0.1:{port}")
                worker = Worker(addresses[-1], functions=FUNCTIONS)
                workers.append((worker, asyncio.ensure_future(worker.run())))
                await asyncio.wait_for(worker.connected.wait(), 10)
            yield addresses[0], addresses[1]
        finally:
            gate.set()
            for worker, _ in workers:
                await worker.stop(grace=1)
            for server in servers:
                await server.stop(grace=0.5)


@pytest.mark.parametrize("strategy", ["enqueue", "interrupt", "rollback"])
async def test_strategies_reach_a_run_driven_by_another_replica(
    two_replicas: tuple[str, str], strategy: str
) -> None:
    a, b = two_replicas
    async with Client(a) as on_a, Client(b) as on_b:
        first = await start_blocked(on_a, "t")
        with pytest.raises(ThreadBusyError):
            await on_b.invoke(quick, "second", thread_id="t")
        second = asyncio.ensure_future(
            on_b.invoke(quick, "second", thread_id="t", multitask_strategy=strategy)
        )
        if strategy == "enqueue":
            gate.set()
        done = await asyncio.wait_for(second, 30)
        gate.set()
        assert done.output == "SECOND"
        if strategy == "rollback":
            with pytest.raises(RunNotFoundError):
                await on_a.get_run(first)
        else:
            expected = RunState.SUCCEEDED if strategy == "enqueue" else RunState.CANCELLED
            assert (await on_a.get_run(first)).state is expected
