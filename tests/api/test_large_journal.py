"""A run's journal of any size resumes, never loops (issue 22).

An entrypoint records 2,000 task results of about 3 KB of JSON each (over
9 MiB as protobuf, more than one Connect message may carry), then
interrupts. Resuming it ships the journal in pages and replays every
recorded call without running a task again, on SQLite and on Postgres; the
thread's state reads back whole, in pages. A single result over the payload
limit fails its run clearly while another run on the same worker finishes.
"""

from __future__ import annotations

import asyncio
import collections
import pathlib
import re
import threading
import time
from collections.abc import AsyncIterator

import pytest

from cairn import Client, Command, RunFailedError, RunState, Worker, entrypoint, interrupt, task
from cairn._values import to_value
from cairn_server.api.message_sizes import max_message_bytes
from cairn_server.server import ServerConfig, create_server
from tests.postgres import store_url

PIECES = 2000
PAYLOAD = 4 * 1024 * 1024  # the server's default max_payload_bytes

runs_of: collections.Counter[int] = collections.Counter()
_lock = threading.Lock()


def piece_value(i: int) -> dict:
    """About 3 KB as JSON, about 5 KB as a protobuf Value."""
    return {"i": i, "text": f"{i:05d}" + "x" * 1500, "numbers": list(range(i, i + 300))}


@task
def piece(i: int) -> dict:
    with _lock:
        runs_of[i] += 1
    return piece_value(i)


@entrypoint()
def long_history(n: int) -> dict:
    futures = [piece(i) for i in range(n)]
    results = [f.result() for f in futures]
    answer = interrupt({"recorded": len(results)})
    return {
        "answer": answer,
        "count": len(results),
        "in_order": [r["i"] for r in results] == list(range(n)),
        "text_bytes": sum(len(r["text"]) for r in results),
    }


@task
def huge(size: int) -> str:
    return "y" * size


@entrypoint()
def too_large(size: int) -> str:
    return huge(size).result()


@task
def small(i: int) -> int:
    return i * 2


@entrypoint()
def quick(n: int) -> list[int]:
    return [small(i).result() for i in range(n)]


@pytest.fixture(params=["sqlite", "postgres"])
async def address(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> AsyncIterator[str]:
    with store_url(request.param, tmp_path) as url:
        config = ServerConfig(address="127.0.0.1:0", store_url=url)
        instance, port = await create_server(config)
        try:
            yield f"127.0.0.1:{port}"
        finally:
            await instance.stop(grace=0.5)


async def _worker(
    address: str, *functions: object, **options: object
) -> tuple[Worker, asyncio.Task[None]]:
    worker = Worker(address, functions=functions, **options)  # type: ignore[arg-type]
    running = asyncio.ensure_future(worker.run())
    await asyncio.wait_for(worker.connected.wait(), 10)
    return worker, running


async def _stop(worker: Worker, running: asyncio.Task[None]) -> None:
    await worker.stop(grace=1)
    await asyncio.wait_for(running, 10)


@pytest.mark.timeout(300)
async def test_a_journal_larger_than_a_message_resumes_without_rerunning_tasks(
    address: str,
) -> None:
    journal_bytes = sum(to_value(piece_value(i)).ByteSize() for i in range(PIECES))
    assert journal_bytes > max_message_bytes(PAYLOAD)  # it cannot travel in one message
    runs_of.clear()
    worker, running = await _worker(address, piece, long_history, quick, small)
    try:
        async with Client(address) as client:
            first = await asyncio.wait_for(
                client.invoke(long_history, PIECES, thread_id="history"), 240
            )
            assert first.state is RunState.INTERRUPTED
            assert [i.value for i in first.interrupts] == [{"recorded": PIECES}]
            assert runs_of == collections.Counter(range(PIECES))

            # The state of such a thread reads back whole (its tasks in pages).
            state = await client.get_state("history")
            pieces = [t for t in state.tasks if t.name == "piece"]
            assert len(pieces) == PIECES
            assert sorted(t.result["i"] for t in pieces) == list(range(PIECES))
            assert pieces[7].result == piece_value(int(pieces[7].result["i"]))
            history = await client.get_state_history("history")
            assert history[0].config == state.config
            assert len([t for t in history[0].tasks if t.name == "piece"]) == PIECES

            started = time.monotonic()
            resumed = await asyncio.wait_for(
                client.invoke(long_history, Command(resume="go"), thread_id="history"), 120
            )
            took = time.monotonic() - started
            assert resumed.state is RunState.SUCCEEDED, resumed.error
            assert resumed.output == {
                "answer": "go",
                "count": PIECES,
                "in_order": True,
                "text_bytes": PIECES * 1505,
            }
            assert runs_of == collections.Counter(range(PIECES))  # none ran again
            print(f"journal {journal_bytes} bytes resumed in {took:.2f}s")

            # The stream served other runs all along and still does.
            other = await asyncio.wait_for(client.invoke(quick, 3, thread_id="other"), 30)
            assert other.state is RunState.SUCCEEDED and other.output == [0, 2, 4]

    finally:
        await _stop(worker, running)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("local_calls", [True, False], ids=["local-call", "dispatched"])
async def test_a_result_over_the_payload_limit_fails_its_run_and_others_go_on(
    address: str, local_calls: bool
) -> None:
    """The worker does not send a report the service would refuse (or one
    its stream could not carry, which would loop): the run fails with an
    error naming the limit, and the worker's other runs go on. (A worker
    that sends it anyway is refused by the service: tests/api/test_bad_input.py.)"""
    worker, running = await _worker(address, huge, too_large, small, quick, local_calls=local_calls)
    try:
        async with Client(address) as client:
            # Over the stream's message limit, and just over the payload limit.
            for size in (max_message_bytes(PAYLOAD) + 1024, PAYLOAD + 1024):
                failing = asyncio.ensure_future(
                    client.invoke(too_large, size, thread_id=f"too-large-{size}")
                )
                other = await asyncio.wait_for(
                    client.invoke(quick, 20, thread_id=f"meanwhile-{size}"), 30
                )
                assert other.state is RunState.SUCCEEDED
                assert other.output == [2 * i for i in range(20)]
                with pytest.raises(RunFailedError) as failed:
                    await asyncio.wait_for(failing, 30)
                error = failed.value.run.error
                assert error is not None
                assert error.type == "PayloadTooLargeError", error
                assert f"at most {PAYLOAD} (max_payload_bytes)" in error.message, error.message
                reported = re.search(r"report is (\d+) bytes", error.message)
                assert reported is not None and size < int(reported[1]) < size + 256
            # The worker's stream never dropped: it still serves.
            assert worker.connected.is_set()
            again = await asyncio.wait_for(client.invoke(quick, 2, thread_id="after"), 30)
            assert again.output == [0, 2]
    finally:
        await _stop(worker, running)
