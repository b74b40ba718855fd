"""The SQLite disk fills while runs are in flight: the runs wait, new runs
are refused with UNAVAILABLE (STORE_UNAVAILABLE), CancelRun answers at once,
and once space is freed every run finishes correctly, with no restart.

The store lives on a small tmpfs mounted for the test (root only: CI runs as
root; elsewhere the test is skipped)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import pathlib
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from cairn import Client, RunState, Worker, entrypoint, task
from cairn._errors import error_info
from cairn.v1 import run_service_pb2, run_service_pb2_grpc
from cairn_server.server import CairnServer, ServerConfig, create_server

gate = threading.Event()


@task
def wait_for_gate(x: str) -> str:
    gate.wait(60)
    return x.upper()


@entrypoint()
def gated(x: str) -> str:
    return wait_for_gate(x).result() + "!"


@pytest.fixture
def small_disk(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


class StoreFailures(logging.Handler):
    """Sets `seen` once a run reports that the store refused its progress."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "the store cannot take its progress" in record.getMessage():
            self.seen.set()


@pytest.fixture
async def served(small_disk: pathlib.Path) -> AsyncIterator[str]:
    config = ServerConfig(address="127.0.0.1:0", store_url=f"sqlite:///{small_disk / 'cairn.db'}")
    server: CairnServer
    server, port = await create_server(config)
    address = f"127.0.0.1:{port}"
    worker = Worker(address, functions=[wait_for_gate, gated])
    running = asyncio.ensure_future(worker.run())
    try:
        await asyncio.wait_for(worker.connected.wait(), 10)
        yield address
    finally:
        gate.set()
        await worker.stop(grace=1)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(running, 5)
        await server.stop(grace=0.5)


def fill(directory: pathlib.Path) -> pathlib.Path:
    """Write zeros into `directory` until its file system is full."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    with pytest.raises(OSError) as full:
        os.write(os.open(directory / "probe", os.O_WRONLY | os.O_CREAT), b"\0" * 4096)
    assert full.value.errno == errno.ENOSPC
    return filler


async def until_blocked(client: Client, thread_id: str, durability: str) -> str:
    """Start a run of `gated` and return its id once its task is running."""
    events = client.stream(
        gated, thread_id, thread_id=thread_id, stream_mode="tasks", durability=durability
    )
    run_id = ""
    async for event in events:
        if event.run is not None:
            run_id = event.run.run_id
        if event.data and event.data.get("name") == "wait_for_gate":
            break
    await events.aclose()
    return run_id


async def finished(client: Client, run_id: str) -> Any:
    async for _ in client.join(run_id):
        pass
    return await client.get_run(run_id)


async def test_runs_finish_once_space_is_freed_without_a_restart(
    served: str, small_disk: pathlib.Path
) -> None:
    gate.clear()
    failures = StoreFailures()
    logging.getLogger("cairn_server").addHandler(failures)
    try:
        async with Client(served, failover_timeout=60) as client:
            threads = {"sync-1": "sync", "sync-2": "sync", "async-1": "async", "exit-1": "exit"}
            run_ids = {t: await until_blocked(client, t, d) for t, d in threads.items()}
            filler = fill(small_disk)

            gate.set()  # the tasks finish; their runs cannot store the results
            assert await asyncio.to_thread(failures.seen.wait, 30)

            async with grpc.aio.insecure_channel(served) as channel:
                runs = run_service_pb2_grpc.RunServiceStub(channel)
                # A new run changes nothing and says why.
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await runs.Invoke(
                        run_service_pb2.InvokeRequest(
                            thread_id="new",
                            target="gated",
                            input=struct_pb2.Value(string_value="new"),
                            create_thread=True,
                        ),
                        timeout=30,
                    )
                assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
                info = error_info(refused.value)
                assert info is not None and info.reason == "STORE_UNAVAILABLE"
                # CancelRun answers: the cancellation stands until it is stored.
                with pytest.raises(grpc.aio.AioRpcError) as pending:
                    await runs.CancelRun(
                        run_service_pb2.CancelRunRequest(run_id=run_ids["sync-2"]), timeout=30
                    )
                assert pending.value.code() is grpc.StatusCode.UNAVAILABLE
                info = error_info(pending.value)
                assert info is not None and info.reason == "CANCEL_PENDING"
                stuck = await runs.GetRun(
                    run_service_pb2.GetRunRequest(run_id=run_ids["sync-1"]), timeout=30
                )
                assert stuck.run.state == 2  # RUN_STATE_RUNNING: it waits for the store

            os.unlink(filler)
            outcomes = {
                t: await asyncio.wait_for(finished(client, run_id), 60)
                for t, run_id in run_ids.items()
            }
            assert outcomes["sync-2"].state is RunState.CANCELLED
            for thread_id in ("sync-1", "async-1", "exit-1"):
                assert outcomes[thread_id].state is RunState.SUCCEEDED, thread_id
                assert outcomes[thread_id].output == thread_id.upper() + "!"
            # A retried cancel finds the run cancelled.
            assert (await client.cancel_run(run_ids["sync-2"])).state is RunState.CANCELLED

            # Every thread is whole and takes new runs.
            for thread_id in threads:
                assert (await client.get_thread(thread_id)).status != "busy"
                assert await client.get_state_history(thread_id)
                again = await client.invoke(gated, "more", thread_id=thread_id)
                assert again.output == "MORE!"
            fresh = await client.invoke(gated, "new", thread_id="new", create_thread=True)
            assert fresh.output == "NEW!"
    finally:
        logging.getLogger("cairn_server").removeHandler(failures)
