"""Client.list_runs and SyncClient.list_runs without a thread: the runs of
every thread of the client's namespace, newest first, filtered by state and
to those that wait; with a thread, as before."""

from __future__ import annotations

import asyncio

from cairn import Client, Run, RunState, SyncClient, WaitReason, entrypoint, remote_task
from tests.conftest import StartWorker

nobody_serves = remote_task("nobody_serves_this")


@entrypoint()
def echo(text: str) -> str:
    return text


@entrypoint()
def asks_nobody(text: str) -> str:
    return str(nobody_serves(text).result())


async def first_waiting(client: Client, thread_id: str) -> Run:
    """Start asks_nobody; the run as its first lifecycle event that waits.
    Sync durability: the run's row is stored before the event is sent, so
    that a listing read from the store finds it waiting."""

    async def find() -> Run:
        events = client.stream(asks_nobody, "x", thread_id=thread_id, durability="sync")
        async for event in events:
            if event.run is not None and event.run.waiting:
                await events.aclose()
                return event.run
        raise AssertionError("the run ended without waiting")

    return await asyncio.wait_for(find(), 30)


async def test_list_runs_without_a_thread_lists_every_thread_newest_first(
    client: Client, start_worker: StartWorker, address: str
) -> None:
    await start_worker([echo, asks_nobody])
    done = [
        await client.invoke(echo, text, thread_id=thread_id)
        for text, thread_id in (("a", "t1"), ("b", "t2"), ("c", "t1"))
    ]
    newest_first = [r.run_id for r in reversed(done)]

    listed = await client.list_runs()

    assert [r.run_id for r in listed] == newest_first
    assert [r.thread_id for r in listed] == ["t1", "t2", "t1"]
    assert [r.run_id for r in await client.list_runs(limit=2)] == newest_first[:2]
    assert [r.run_id for r in await client.list_runs("t1")] == [done[2].run_id, done[0].run_id]
    assert [r.run_id for r in await client.list_runs(thread_id="t2")] == [done[1].run_id]

    run = await first_waiting(client, "w")

    waiting = await client.list_runs(waiting=True)
    assert [(r.run_id, r.thread_id) for r in waiting] == [(run.run_id, "w")]
    assert [(w.reason, w.task_name) for w in waiting[0].waiting] == [
        (WaitReason.NO_WORKER, "nobody_serves_this")
    ]
    assert [r.run_id for r in await client.list_runs(state="running")] == [run.run_id]
    assert await client.list_runs(state=RunState.SUCCEEDED, waiting=True) == []
    assert await client.list_runs("t1", waiting=True) == []
    assert [r.run_id for r in await client.list_runs("w", waiting=True)] == [run.run_id]

    def listed_by_sync_client() -> tuple[list[str], list[str]]:
        with SyncClient(address) as sync:
            every = [r.run_id for r in sync.list_runs()]
            return every, [r.run_id for r in sync.list_runs(waiting=True)]

    # Its own thread and loop: the server runs on this test's loop.
    every, only_waiting = await asyncio.to_thread(listed_by_sync_client)
    assert (every, only_waiting) == ([run.run_id, *newest_first], [run.run_id])

    await client.cancel_run(run.run_id)
    assert await client.list_runs(waiting=True) == []
    assert (await client.list_runs(limit=1))[0].state is RunState.CANCELLED
