"""The service's timer clock in tests (durable time: sleeps, interrupt
timeouts, schedules), moved by hand, and an in-process server that reads it."""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import AsyncIterator
from typing import Any

from cairn_server.server import CairnServer, ServerConfig, create_server

START = 1_800_000_000.0
"""Where a test clock starts (2027-01-15T08:00:00Z)."""


class TestClock:
    """A `() -> float` timer clock that stands still until moved."""

    __test__ = False  # not a test class, for pytest

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextlib.asynccontextmanager
async def clocked_server(
    db_path: pathlib.Path, clock: TestClock, **config: Any
) -> AsyncIterator[tuple[CairnServer, str]]:
    """A server on 127.0.0.1 over a SQLite file whose timers read `clock`;
    yields it and its address."""
    settings = ServerConfig(
        address="127.0.0.1:0", store_url=f"sqlite:///{db_path}", timer_clock=clock, **config
    )
    instance, port = await create_server(settings)
    try:
        yield instance, f"127.0.0.1:{port}"
    finally:
        await instance.stop(grace=0.5)
