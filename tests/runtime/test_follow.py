"""Following a live run's event log."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from cairn_server.runtime.events import EventLog
from cairn_server.runtime.manager import RunManager
from cairn_server.store import Store


async def test_a_follower_suspended_while_the_run_ends_still_gets_every_event() -> None:
    """The follower yields an event and is suspended (its client reads
    slowly); meanwhile the run appends its last events and closes the log.
    Resumed, the follower must hand out those events before it stops."""
    manager = RunManager(cast(Store, None))
    log = EventLog("run-1", 1)
    manager._active["run-1"] = cast(Any, SimpleNamespace(log=log, abandoned=False))
    log.append("chunk", {"n": 1}, 0.0)

    follower = manager.follow("run-1")
    first = await anext(follower)
    for n in (2, 3, 4):
        log.append("chunk", {"n": n}, 0.0)
    log.close()
    rest = [event async for event in follower]

    assert [e.payload["n"] for e in [first, *rest]] == [1, 2, 3, 4]
