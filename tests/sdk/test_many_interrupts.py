"""A run waiting on an interrupt holds no server memory per run: a thousand
interrupted runs leave no run handles, no queued or held tasks and no asyncio
tasks behind, and every one of them can still be resumed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from cairn import Client, Command, RunState, ThreadStatus, entrypoint, interrupt
from cairn_server.server import CairnServer

RUNS = 1000
CONCURRENCY = 50
# Tasks that may come and go independently of the number of runs (gRPC
# internals, the store's writer, worker streams); far below RUNS.
SLACK = 25

T = TypeVar("T")


@entrypoint()
def confirm(n: int) -> dict:
    answer = interrupt({"confirm": n})
    return {"n": n, "answer": answer}


async def for_each_thread(call: Callable[[int], Awaitable[T]]) -> list[T]:
    """`call(n)` for n in range(RUNS), at most CONCURRENCY at a time."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(n: int) -> T:
        async with gate:
            return await call(n)

    return await asyncio.gather(*(one(n) for n in range(RUNS)))


def assert_nothing_held(instance: CairnServer) -> None:
    runs: Any = instance.runs
    assert runs._active == {}
    assert runs._by_thread == {}
    assert runs._starting == set()
    assert runs._tasks == set()
    dispatcher = runs.dispatcher
    assert all(len(queue) == 0 for queue in dispatcher._queues.values()), {
        name: len(queue) for name, queue in dispatcher._queues.items()
    }
    assert dispatcher._holders == {}
    workers = dispatcher.workers()
    assert workers, "the worker is still connected"
    for worker in workers:
        assert worker.held == {}
        assert worker.load() == 0


# A thousand runs take two minutes or more on a busy 2-core machine.
@pytest.mark.timeout(400)
async def test_a_thousand_interrupted_runs_hold_nothing_and_all_resume(
    server: tuple[CairnServer, str], client: Client, start_worker
) -> None:
    instance = server[0]
    await start_worker([confirm])
    # Warm up the client channel and the store before counting tasks.
    warm = await client.invoke(confirm, -1, thread_id="warm-up")
    assert warm.state is RunState.INTERRUPTED
    tasks_before = len(asyncio.all_tasks())

    started = time.monotonic()
    runs = await for_each_thread(lambda n: client.invoke(confirm, n, thread_id=f"many-{n}"))
    interrupted_after = time.monotonic() - started

    assert [run.state for run in runs] == [RunState.INTERRUPTED] * RUNS
    assert [[i.value for i in run.interrupts] for run in runs] == [
        [{"confirm": n}] for n in range(RUNS)
    ]
    assert_nothing_held(instance)
    leftover = len(asyncio.all_tasks()) - tasks_before
    assert leftover < SLACK, f"{leftover} more asyncio tasks than before {RUNS} runs"

    interrupted = await client.list_threads(status=ThreadStatus.INTERRUPTED, limit=RUNS + 10)
    assert {t.thread_id for t in interrupted} == {"warm-up"} | {f"many-{n}" for n in range(RUNS)}

    resumed = await for_each_thread(
        lambda n: client.invoke(confirm, Command(resume=f"yes {n}"), thread_id=f"many-{n}")
    )
    total = time.monotonic() - started

    assert [run.state for run in resumed] == [RunState.SUCCEEDED] * RUNS
    assert [run.output for run in resumed] == [{"n": n, "answer": f"yes {n}"} for n in range(RUNS)]
    assert_nothing_held(instance)
    assert len(asyncio.all_tasks()) - tasks_before < SLACK
    print(f"{RUNS} runs interrupted in {interrupted_after:.1f}s, all resumed at {total:.1f}s")
