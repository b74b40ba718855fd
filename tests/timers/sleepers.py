"""Following runs that sleep, for the tests of durable time."""

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
