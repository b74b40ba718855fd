"""Following runs that sleep or time out, for the tests of durable time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from cairn import Client, Run, RunEvent, RunState, WaitReason


async def sleeping(events: AsyncIterator[RunEvent]) -> Run:
    """The run once one of its lifecycle events says it sleeps."""
    async for event in events:
        run = event.run
        if run is not None and any(w.reason is WaitReason.TIMER for w in run.waiting):
            return run
        assert run is None or run.state is RunState.RUNNING, run
    raise AssertionError("the run ended without sleeping")


async def start_sleeper(client: Client, target: str, value: object, thread_id: str) -> Run:
    events = client.stream(target, value, thread_id=thread_id, stream_mode="updates")
    try:
        return await asyncio.wait_for(sleeping(events), 30)
    finally:
        await events.aclose()


async def outcome(client: Client, run_id: str) -> Run:
    async def ended() -> Run:
        async for _ in client.join(run_id):
            pass
        return await client.get_run(run_id)

    return await asyncio.wait_for(ended(), 30)


async def latest_run(client: Client, thread_id: str, count: int) -> Run:
    """The outcome of the thread's newest run, once the thread has `count`."""
    for _ in range(200):
        runs = await client.list_runs(thread_id)
        if len(runs) >= count:
            assert len(runs) == count, runs
            return await outcome(client, runs[0].run_id)
        await asyncio.sleep(0.05)
    raise AssertionError(f"thread {thread_id} never had {count} runs")
