"""A server whose timer clock the tests move (tests/clock.py)."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest

from cairn_server.server import CairnServer
from tests.clock import TestClock, clocked_server


@pytest.fixture
def clock() -> TestClock:
    return TestClock()


@pytest.fixture
async def server(db_path: pathlib.Path, clock: TestClock) -> AsyncIterator[tuple[CairnServer, str]]:
    async with clocked_server(db_path, clock) as served:
        yield served
