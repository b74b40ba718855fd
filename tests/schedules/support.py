"""Waiting for what a schedule's firings did, shared by the API and the
end-to-end tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from cairn import Client, ScheduleFiring, ScheduleFiringState


async def firings_until(
    client: Client,
    schedule_id: str,
    done: Callable[[list[ScheduleFiring]], bool],
    *,
    seconds: float = 15.0,
    context: Callable[[], str] = str,
) -> list[ScheduleFiring]:
    """The schedule's firings, oldest first, once `done` holds for them and
    none is pending (polled: no event announces a firing). On a timeout the
    error shows the firings and `context()` (say, the servers' errors)."""
    deadline = time.monotonic() + seconds
    while True:
        schedule = await client.schedules.get(schedule_id)
        firings = list(reversed(schedule.recent_firings))
        if done(firings) and all(f.state is not ScheduleFiringState.PENDING for f in firings):
            return firings
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; the firings are {firings}\n{context()}")
        await asyncio.sleep(0.02)
