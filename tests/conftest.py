"""Shared fixtures: a real Cairn server on an ephemeral port with a SQLite file,
in-process workers, and clients."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import pytest

from cairn import Client, Worker
from cairn._functional import Task, entrypoint
from cairn_server.server import CairnServer, ServerConfig, create_server

StartWorker = Callable[..., Awaitable[Worker]]


@pytest.fixture
def db_path(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "cairn.db"


@pytest.fixture
async def server(db_path: pathlib.Path) -> AsyncIterator[tuple[CairnServer, str]]:
    config = ServerConfig(address="127.0.0.1:0", store_url=f"sqlite:///{db_path}")
    instance, port = await create_server(config)
    try:
        yield instance, f"127.0.0.1:{port}"
    finally:
        await instance.stop(grace=0.5)


@pytest.fixture
def address(server: tuple[CairnServer, str]) -> str:
    return server[1]


@pytest.fixture
async def client(address: str) -> AsyncIterator[Client]:
    async with Client(address) as instance:
        yield instance


@pytest.fixture
async def start_worker(address: str) -> AsyncIterator[StartWorker]:
    """Start in-process workers serving the given functions; stopped at teardown."""
    running: list[tuple[Worker, asyncio.Task[None]]] = []

    async def start(functions: Iterable[Task | entrypoint], **options: object) -> Worker:
        worker = Worker(address, functions=functions, **options)  # type: ignore[arg-type]
        task = asyncio.ensure_future(worker.run())
        running.append((worker, task))
        await asyncio.wait_for(worker.connected.wait(), 10)
        return worker

    yield start
    for worker, task in running:
        await worker.stop(grace=1)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
