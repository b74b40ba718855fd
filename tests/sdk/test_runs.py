"""Runs beyond the doc examples: retries, sessions, reconnecting streams,
cancellation, durability modes, history and run listings."""

from __future__ import annotations

import asyncio
import collections
import threading

import pytest

from cairn import (
    Client,
    Command,
    RetryPolicy,
    RunFailedError,
    RunState,
    TaskFailedError,
    ThreadStatus,
    entrypoint,
    interrupt,
    task,
)

calls: collections.Counter[str] = collections.Counter()


@pytest.fixture(autouse=True)
def reset() -> None:
    calls.clear()


@task(retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=False))
def flaky_fetch(url: str) -> str:
    calls["flaky_fetch"] += 1
    if calls["flaky_fetch"] < 3:
        raise ConnectionError("connection reset")
    return f"fetched {url}"


@task(retry_policy=RetryPolicy(max_attempts=5, initial_interval=0.01))
def bad_input(x: int) -> int:
    calls["bad_input"] += 1
    raise ValueError("bad input")


@entrypoint()
def fetcher(url: str) -> str:
    return flaky_fetch(url).result()


@entrypoint()
def validator(x: int) -> str:
    try:
        return str(bad_input(x).result())
    except TaskFailedError as error:
        return f"caught {error.type}: {error.message}"


async def test_retry_policy_retries_retryable_errors(client: Client, start_worker) -> None:
    await start_worker([flaky_fetch, fetcher])
    run = await client.invoke(fetcher, "https://example.com", thread_id="retry")
    assert run.output == "fetched https://example.com"
    assert calls["flaky_fetch"] == 3


async def test_programming_errors_are_not_retried_and_reach_the_caller(
    client: Client, start_worker
) -> None:
    await start_worker([bad_input, validator])
    run = await client.invoke(validator, 1, thread_id="noretry")
    assert run.output == "caught ValueError: bad input"
    assert calls["bad_input"] == 1


@task
def propose(topic: str) -> str:
    return f"draft on {topic}"


@entrypoint()
def reviewed(topic: str) -> dict:
    draft = propose(topic).result()
    verdict = interrupt({"draft": draft})
    title = interrupt("title?")
    return {"draft": draft, "verdict": verdict, "title": title}


async def test_session_answers_interrupts_on_the_same_stream(client: Client, start_worker) -> None:
    await start_worker([propose, reviewed])
    session = client.session(reviewed, "owls", thread_id="session", stream_mode="updates")
    answers = iter(["approve", "Owls at night"])
    outputs = []
    async for event in session:
        if event.run is not None and event.run.state is RunState.INTERRUPTED:
            await session.resume(next(answers))
        elif event.run is not None and event.run.state is RunState.SUCCEEDED:
            outputs.append(event.run.output)
    assert outputs == [{"draft": "draft on owls", "verdict": "approve", "title": "Owls at night"}]


release = threading.Event()


@task
def wait_for_release(x: int) -> int:
    release.wait(30)
    return x


@entrypoint()
def gated(n: int) -> list:
    return [wait_for_release(i).result() for i in range(n)]


async def test_join_after_disconnect_gets_exactly_the_missed_events(
    client: Client, start_worker
) -> None:
    release.clear()
    await start_worker([wait_for_release, gated])
    stream = client.stream(gated, 3, thread_id="join", stream_mode=["updates", "tasks"])
    seen = []
    async for event in stream:
        seen.append(event)
        if event.mode == "tasks":
            break
    await stream.aclose()  # the client disconnects mid-run
    release.set()
    rest = [e async for e in client.join(seen[0].run_id, after_event_id=seen[-1].event_id)]
    everything = [e async for e in client.join(seen[0].run_id)]
    assert [e.event_id for e in seen + rest] == [e.event_id for e in everything]
    assert [e.event_id for e in everything] == list(range(1, len(everything) + 1))
    assert everything[-1].run is not None and everything[-1].run.output == [0, 1, 2]


unwound = threading.Event()


@task
async def wait_for_release_async(x: int) -> int:
    # A coroutine task runs on the worker's loop, never in the thread of the
    # workflow that waits for it (a plain one may: see test_local_calls).
    await asyncio.to_thread(release.wait, 30)
    return x


@entrypoint()
def gated_with_cleanup(n: int) -> list:
    try:
        return [wait_for_release_async(i).result() for i in range(n)]
    finally:
        unwound.set()


async def test_cancel_run_then_retry_from_checkpoint(client: Client, start_worker) -> None:
    release.clear()
    unwound.clear()
    await start_worker([wait_for_release_async, gated_with_cleanup])
    stream = client.stream(gated_with_cleanup, 2, thread_id="cancel", stream_mode="tasks")
    first = await anext(stream)
    await stream.aclose()
    cancelled = await client.cancel_run(first.run_id)
    assert cancelled.state is RunState.CANCELLED
    assert (await client.get_thread("cancel")).status is ThreadStatus.IDLE
    # The sync workflow body blocked on a task result in its thread unwinds.
    assert await asyncio.to_thread(unwound.wait, 10)
    release.set()
    run = await client.invoke(gated_with_cleanup, None, thread_id="cancel")
    assert run.output == [0, 1]


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
async def test_every_durability_interrupts_and_resumes(
    client: Client, start_worker, durability: str
) -> None:
    await start_worker([propose, reviewed])
    thread = f"durable-{durability}"
    run = await client.invoke(reviewed, "bees", thread_id=thread, durability=durability)
    assert run.durability == durability
    run = await client.invoke(reviewed, Command(resume="ok"), thread_id=thread)
    run = await client.invoke(reviewed, Command(resume="Bees"), thread_id=thread)
    assert run.output == {"draft": "draft on bees", "verdict": "ok", "title": "Bees"}


async def test_state_history_and_run_listing(client: Client, start_worker) -> None:
    await start_worker([propose, reviewed])
    await client.invoke(reviewed, "ants", thread_id="hist")
    await client.invoke(reviewed, Command(resume="yes"), thread_id="hist")
    done = await client.invoke(reviewed, Command(resume="Ants"), thread_id="hist")
    history = await client.get_state_history("hist")
    assert [s.metadata["source"] for s in history] == ["loop", "input"]
    assert history[0].values == done.output
    assert history[0].parent_config == history[1].config
    assert [t.name for t in history[1].tasks] == ["reviewed", "propose"]
    assert history[1].tasks[1].result == "draft on ants"
    runs = await client.list_runs("hist")
    assert [r.state for r in runs] == [
        RunState.SUCCEEDED,
        RunState.INTERRUPTED,
        RunState.INTERRUPTED,
    ]
    assert (await client.get_run(runs[0].run_id)).output == done.output
    assert [s.config for s in await client.get_state_history("hist", limit=1)] == [
        history[0].config
    ]


async def test_failed_run_reports_error_and_thread_status(client: Client, start_worker) -> None:
    @entrypoint(name="explodes")
    def explodes(x: int) -> int:
        raise KeyError("missing")

    await start_worker([explodes])
    with pytest.raises(RunFailedError) as failure:
        await client.invoke("explodes", 1, thread_id="boom")
    assert failure.value.run.error.type == "KeyError"
    assert (await client.get_thread("boom")).status is ThreadStatus.ERROR


async def test_request_id_makes_a_retried_start_attach_to_the_first_run(
    client: Client, start_worker
) -> None:
    await start_worker([propose, reviewed])
    first = await client.invoke(reviewed, "elk", thread_id="idem", request_id="req-1")
    again = await client.invoke(reviewed, "elk", thread_id="idem", request_id="req-1")
    assert again.run_id == first.run_id
    assert len(await client.list_runs("idem")) == 1


async def test_many_concurrent_runs_on_one_worker(client: Client, start_worker) -> None:
    await start_worker([propose, reviewed], max_concurrency=4)
    runs = await asyncio.gather(
        *(client.invoke(reviewed, f"t{i}", thread_id=f"many-{i}") for i in range(40))
    )
    assert all(r.state is RunState.INTERRUPTED for r in runs)
    assert sorted(r.interrupts[0].value["draft"] for r in runs) == sorted(
        f"draft on t{i}" for i in range(40)
    )


@task
def approve(item: str) -> str:
    return f"{item}: {interrupt(f'approve {item}?')}"


@entrypoint()
async def approvals(items: list[str]) -> list[str]:
    return list(await asyncio.gather(*(approve(i) for i in items)))


async def test_interrupts_in_parallel_tasks_are_resumed_by_id(client: Client, start_worker) -> None:
    await start_worker([approve, approvals])
    run = await client.invoke(approvals, ["a", "b"], thread_id="by-id")
    by_value = {i.value: i for i in run.interrupts}
    assert set(by_value) == {"approve a?", "approve b?"}
    assert by_value["approve a?"].id != by_value["approve b?"].id
    answers = {by_value["approve a?"].id: "yes", by_value["approve b?"].id: "no"}
    done = await client.invoke(approvals, Command(resume=answers), thread_id="by-id")
    assert done.output == ["a: yes", "b: no"]
