"""Local calls: an entrypoint's calls of a task its own worker serves run on
that worker at once (ScheduleTask.local), and behave as calls the service
dispatched: recorded once, retried, streamed, cancelled and re-run after a
lost worker the same way."""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Any

from cairn import Client, RetryPolicy, entrypoint, get_stream_writer, task
from cairn._ids import child_task_id
from cairn_server.engine.tasks import child_task_id as service_child_task_id

ran: collections.Counter[str] = collections.Counter()


def test_the_worker_derives_the_services_child_ids() -> None:
    for parent, index in (("p", 0), ("01a2006c-7d71-7e72-859c-4a470fef8f00", 41), ("ü", 7)):
        assert child_task_id(parent, index) == service_child_task_id(parent, index)


@task
def add_one(x: int) -> int:
    ran["add_one"] += 1
    return x + 1


@entrypoint()
def count_to(n: int) -> int:
    value = 0
    for _ in range(n):
        value = add_one(value).result()
    return value


async def test_local_calls_are_recorded_once_and_replayed(
    client: Client, start_worker: Any
) -> None:
    ran.clear()
    await start_worker([add_one, count_to])
    run = await client.invoke(count_to, 5, thread_id="local", durability="sync")
    assert run.output == 5
    assert ran["add_one"] == 5
    state = await client.get_state("local")
    history = await client.get_state_history("local")
    assert state.values == 5
    assert history, "the run stored checkpoints"
    # The same thread again: a new run, whose calls are fresh again.
    run = await client.invoke(count_to, 2, thread_id="local", durability="sync")
    assert run.output == 2
    assert ran["add_one"] == 7


attempts: collections.Counter[str] = collections.Counter()


@task(retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=False))
def flaky(x: int) -> int:
    attempts["flaky"] += 1
    if attempts["flaky"] < 3:
        raise ConnectionError("try again")
    return x * 10


@entrypoint()
def call_flaky(x: int) -> int:
    return flaky(x).result()


async def test_a_failed_local_call_is_retried_by_its_policy(
    client: Client, start_worker: Any
) -> None:
    attempts.clear()
    await start_worker([flaky, call_flaky])
    run = await client.invoke(call_flaky, 4, thread_id="flaky")
    assert run.output == 40
    assert attempts["flaky"] == 3


@task
def chatty(x: int) -> int:
    write = get_stream_writer()
    write({"progress": x})
    return x


@entrypoint()
def call_chatty(x: int) -> int:
    return chatty(x).result() + chatty(x + 1).result()


async def test_a_local_call_streams_custom_data_and_task_events(
    client: Client, start_worker: Any
) -> None:
    await start_worker([chatty, call_chatty])
    events = [
        e
        async for e in client.stream(
            call_chatty, 1, thread_id="chatty", stream_mode=["custom", "tasks"]
        )
    ]
    custom = [e.data for e in events if e.mode == "custom"]
    assert custom == [{"progress": 1}, {"progress": 2}]
    tasks = [(e.data["name"], "result" in e.data) for e in events if e.mode == "tasks"]
    chatty_events = [t for t in tasks if t[0] == "chatty"]
    assert chatty_events == [("chatty", False), ("chatty", True)] * 2


gate = threading.Event()


@task
def blocked(x: int) -> int:
    gate.wait(30)
    return x


@entrypoint()
def call_blocked(x: int) -> int:
    return blocked(x).result()


async def test_a_blocking_local_call_is_announced_when_task_starts_are_streamed(
    client: Client, start_worker: Any
) -> None:
    """With the tasks stream mode, the start of a local call is seen while it
    runs, as for a dispatched one."""
    gate.clear()
    await start_worker([blocked, call_blocked])
    events = client.stream(call_blocked, 3, thread_id="blocked", stream_mode="tasks")
    async for event in events:
        if event.data and event.data.get("name") == "blocked" and "result" not in event.data:
            break
    gate.set()
    finals = [e.run for e in [e async for e in events] if e.run is not None]
    assert finals[-1].output == 3


async def test_cancelling_a_run_cancels_its_announced_local_call(
    client: Client, start_worker: Any
) -> None:
    gate.clear()
    await start_worker([blocked, call_blocked])
    events = client.stream(call_blocked, 1, thread_id="cancel", stream_mode="tasks")
    run_id = ""
    async for event in events:
        if event.run is not None:
            run_id = event.run.run_id
        if event.data and event.data.get("name") == "blocked":
            break
    cancelled = await asyncio.wait_for(client.cancel_run(run_id), 10)
    assert cancelled.state.value == "cancelled"
    gate.set()


hold_gate = threading.Event()


@task
def hold() -> str:
    hold_gate.wait(30)
    return threading.current_thread().name


@task
def thread_name(x: int) -> str:
    return threading.current_thread().name


@entrypoint()
def wait_beside_a_busy_pool(x: int) -> dict[str, Any]:
    held = hold()  # takes the pool's only thread
    quick = thread_name(x).result()  # so this one can only run here
    hold_gate.set()
    return {"own": threading.current_thread().name, "quick": quick, "held": held.result()}


async def test_a_sync_workflow_runs_the_call_it_waits_for_in_its_own_thread(
    client: Client, start_worker: Any
) -> None:
    """A local call of a plain function that has not started when the
    workflow waits for it runs in the workflow's thread (no pool thread needs
    to wake up), while calls it does not wait for run on the pool."""
    hold_gate.clear()
    await start_worker([hold, thread_name, wait_beside_a_busy_pool], max_concurrency=1)
    run = await client.invoke(wait_beside_a_busy_pool, 1, thread_id="own-thread")
    assert run.output["quick"] == run.output["own"]
    assert run.output["held"].startswith("cairn-task")
    history = await client.get_state_history("own-thread")
    assert history[0].values == run.output
