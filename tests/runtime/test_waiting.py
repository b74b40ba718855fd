"""What a run waits on, beyond the e2e tests (tests/e2e/test_waiting.py): a
graph node calling a task no worker serves, and a task waiting for its
retry; each shown in the run's events, in GetRun and, read from the store,
in ListRuns."""

from __future__ import annotations

import asyncio
from typing import TypedDict

from cairn import (
    START,
    Client,
    RetryPolicy,
    Run,
    RunState,
    StateGraph,
    WaitReason,
    entrypoint,
    remote_task,
    task,
)
from tests.conftest import StartWorker


class Research(TypedDict):
    topic: str
    notes: str


nobody_serves = remote_task("nobody_serves_this")


def research(state: Research) -> dict:
    return {"notes": nobody_serves(state["topic"]).result()}


researcher = (
    StateGraph(Research)
    .add_node("research", research)
    .add_edge(START, "research")
    .compile(name="researcher")
)


class Flaky(Exception):
    """Retried by default (not a programming error)."""


@task(retry_policy=RetryPolicy(max_attempts=2, initial_interval=60.0, jitter=False))
def flaky(x: str) -> str:
    raise Flaky(x)


@entrypoint()
def calls_flaky(x: str) -> str:
    return str(flaky(x).result())


async def first_waiting(client: Client, target: object, input: object, thread_id: str) -> Run:
    """Start a run and return it as its first lifecycle event that waits."""

    async def find() -> Run:
        async for event in client.stream(target, input, thread_id=thread_id):  # type: ignore[arg-type]
            if event.run is not None:
                assert event.run.state is RunState.RUNNING, event.run
                if event.run.waiting:
                    return event.run
        raise AssertionError("the run ended without waiting")

    return await asyncio.wait_for(find(), 30)


async def test_a_graph_node_calling_a_task_no_worker_serves_reports_it(
    client: Client, start_worker: StartWorker
) -> None:
    await start_worker([researcher])
    run = await first_waiting(client, researcher, {"topic": "owls"}, "g")
    [waiting] = run.waiting
    assert (waiting.reason, waiting.task_name) == (WaitReason.NO_WORKER, "nobody_serves_this")
    assert waiting.namespace == ()  # called by the graph's node, at the run's root
    assert (await client.get_run(run.run_id)).waiting == run.waiting
    [listed] = await client.list_runs("g")
    assert listed.waiting == run.waiting
    cancelled = await client.cancel_run(run.run_id)
    assert cancelled.state is RunState.CANCELLED and cancelled.waiting == ()


async def test_a_task_waiting_for_its_retry_reports_when_it_is_due(
    client: Client, start_worker: StartWorker
) -> None:
    await start_worker([flaky, calls_flaky])
    run = await first_waiting(client, calls_flaky, "x", "r")
    [waiting] = run.waiting
    assert (waiting.reason, waiting.task_name) == (WaitReason.RETRY_BACKOFF, "flaky")
    assert waiting.since is not None and waiting.until is not None
    assert abs((waiting.until - waiting.since).total_seconds() - 60.0) < 0.001
    [listed] = await client.list_runs("r")
    assert listed.waiting == run.waiting
    await client.cancel_run(run.run_id)
