"""Task timeouts (TaskTimeouts) with a real server and in-process workers:
a run never waits for good on a task no worker takes or an attempt that
never ends, and heartbeats keep a long task alive.

Timeouts are short real ones; nothing asserts on elapsed time."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from cairn import (
    Client,
    RetryPolicy,
    RunFailedError,
    TaskTimeoutError,
    TaskTimeouts,
    entrypoint,
    heartbeat,
    remote_task,
    task,
)
from cairn._context import current
from tests.conftest import StartWorker

STARTS: Counter[str] = Counter()


def started(name: str) -> int:
    """Count an execution of `name`; returns its attempt number."""
    STARTS[name] += 1
    return current().assignment.attempt


@pytest.fixture(autouse=True)
def _fresh_counts() -> None:
    STARTS.clear()


# --- schedule_to_start ---------------------------------------------------------------

nobody = remote_task("nobody_serves_this", timeouts=TaskTimeouts(schedule_to_start=0.5))


@entrypoint()
async def calls_an_unserved_task(x: str) -> str:
    return await nobody(x)


@entrypoint()
async def catches_the_timeout(x: str) -> dict[str, Any]:
    try:
        await nobody(x)
    except TaskTimeoutError as error:
        return {"timeout": error.timeout, "task": error.task_name}
    return {"timeout": None}


async def test_a_task_no_worker_takes_fails_the_run_with_a_timeout_error(
    client: Client, start_worker: StartWorker
) -> None:
    await start_worker([calls_an_unserved_task])
    with pytest.raises(RunFailedError) as failed:
        await asyncio.wait_for(client.invoke("calls_an_unserved_task", "x", thread_id="t"), 30)
    error = failed.value.run.error
    assert error is not None
    assert error.type == "TaskTimeoutError"
    assert "nobody_serves_this" in error.message and "schedule_to_start" in error.message


async def test_code_that_catches_the_timeout_error_goes_on(
    client: Client, start_worker: StartWorker
) -> None:
    await start_worker([catches_the_timeout])
    run = await asyncio.wait_for(client.invoke("catches_the_timeout", "x", thread_id="t"), 30)
    assert run.output == {"timeout": "schedule_to_start", "task": "nobody_serves_this"}


@entrypoint(timeouts=TaskTimeouts(schedule_to_start=timedelta(milliseconds=500)))
async def once_served(x: str) -> str:
    return x


async def test_a_run_no_worker_takes_fails_instead_of_waiting_for_good(
    client: Client, start_worker: StartWorker
) -> None:
    worker = await start_worker([once_served])
    assert (await client.invoke("once_served", "hello", thread_id="a")).output == "hello"
    await worker.stop(grace=1)  # the only worker serving it goes away
    with pytest.raises(RunFailedError) as failed:
        await asyncio.wait_for(client.invoke("once_served", "again", thread_id="b"), 30)
    assert failed.value.run.error is not None
    assert failed.value.run.error.type == "TaskTimeoutError"


def test_an_entrypoint_takes_only_a_schedule_to_start_timeout() -> None:
    with pytest.raises(ValueError, match="schedule_to_start"):
        entrypoint(timeouts=TaskTimeouts(start_to_close=1))
    with pytest.raises(ValueError, match="positive"):
        TaskTimeouts(heartbeat=-1)


# --- start_to_close ------------------------------------------------------------------


@task(
    timeouts=TaskTimeouts(start_to_close=0.5),
    retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.05, jitter=False),
)
async def hangs_on_its_first_attempt(x: str) -> str:
    if started("hangs_on_its_first_attempt") == 1:
        await asyncio.Event().wait()  # never answers; cancelled by the service
    return f"{x} on attempt {current().assignment.attempt}"


@entrypoint()
async def retries_a_slow_task(x: str) -> str:
    return await hangs_on_its_first_attempt(x)


async def test_an_attempt_that_runs_too_long_is_retried(
    client: Client, start_worker: StartWorker
) -> None:
    await start_worker([retries_a_slow_task, hangs_on_its_first_attempt])
    run = await asyncio.wait_for(client.invoke("retries_a_slow_task", "x", thread_id="t"), 30)
    assert run.output == "x on attempt 2"
    assert STARTS["hangs_on_its_first_attempt"] == 2


@task(
    timeouts=TaskTimeouts(start_to_close=0.3),
    retry_policy=RetryPolicy(max_attempts=2, initial_interval=0.05, jitter=False),
)
async def always_hangs(x: str) -> str:
    started("always_hangs")
    await asyncio.Event().wait()
    return x


@entrypoint()
async def calls_a_task_that_always_hangs(x: str) -> str:
    return await always_hangs(x)


async def test_a_task_whose_every_attempt_runs_too_long_fails_the_run(
    client: Client, start_worker: StartWorker
) -> None:
    await start_worker([calls_a_task_that_always_hangs, always_hangs])
    with pytest.raises(RunFailedError) as failed:
        await asyncio.wait_for(
            client.invoke("calls_a_task_that_always_hangs", "x", thread_id="t"), 30
        )
    error = failed.value.run.error
    assert error is not None and error.type == "TaskTimeoutError"
    assert "start_to_close" in error.message
    assert STARTS["always_hangs"] == 2  # both attempts of its RetryPolicy


# --- heartbeats ----------------------------------------------------------------------

CANCELLED = threading.Event()


@task(timeouts=TaskTimeouts(heartbeat=0.5))
def long_sync_task(steps: int) -> int:
    started("long_sync_task")
    for step in range(steps):
        time.sleep(0.05)
        heartbeat({"step": step})
    return steps


@task(timeouts=TaskTimeouts(heartbeat=0.5))
async def long_async_task(steps: int) -> int:
    started("long_async_task")
    for _ in range(steps):
        await asyncio.sleep(0.05)
        heartbeat()
    return steps


@entrypoint()
async def runs_long_tasks(steps: int) -> list[int]:
    return [await long_sync_task(steps), await long_async_task(steps)]


async def test_heartbeats_keep_a_long_task_on_its_worker(
    client: Client, start_worker: StartWorker
) -> None:
    # Each task runs for several of its heartbeat timeouts.
    await start_worker([runs_long_tasks, long_sync_task, long_async_task])
    run = await asyncio.wait_for(client.invoke("runs_long_tasks", 40, thread_id="t"), 60)
    assert run.output == [40, 40]
    assert STARTS["long_sync_task"] == 1 and STARTS["long_async_task"] == 1


@task(timeouts=TaskTimeouts(heartbeat=0.3))
def silent_after_a_while(x: str) -> str:
    if started("silent_after_a_while") == 1 and STARTS["silent_after_a_while"] == 1:
        heartbeat("halfway")
        # Silent until the service takes the task back; the next heartbeat
        # then raises, unwinding this thread.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if STARTS["silent_after_a_while"] > 1:
                try:
                    heartbeat()
                except BaseException:
                    CANCELLED.set()
                    raise
    return "done"


@entrypoint()
async def calls_a_silent_task(x: str) -> str:
    return await silent_after_a_while(x)


async def test_a_silent_task_is_dispatched_again_and_its_old_attempt_stops(
    client: Client, start_worker: StartWorker
) -> None:
    CANCELLED.clear()
    await start_worker([calls_a_silent_task, silent_after_a_while])
    run = await asyncio.wait_for(client.invoke("calls_a_silent_task", "x", thread_id="t"), 30)
    assert run.output == "done"
    assert STARTS["silent_after_a_while"] == 2
    assert await asyncio.to_thread(CANCELLED.wait, 10)
