"""Interrupts that time out (issue 20): with no answer in time the service
answers the interrupt itself, with its default or an InterruptTimeoutError;
an answer in time wins; and when both come at once only one of them resumes
the run. On a real server with an injected timer clock: nothing waits for
real time."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, TypedDict

import pytest

from cairn import (
    END,
    START,
    Client,
    Command,
    FailedPreconditionError,
    InterruptTimeoutError,
    NotFoundError,
    RunState,
    StateGraph,
    entrypoint,
    interrupt,
    task,
)
from cairn_server.server import CairnServer
from tests.clock import START as NOW
from tests.clock import TestClock
from tests.conftest import StartWorker
from tests.timers.sleepers import latest_run

asked: list[str] = []


@task
def ask(question: str) -> Any:
    asked.append(question)
    return interrupt(question, timeout=timedelta(hours=1), default="no answer")


@entrypoint()
def approval(topic: str) -> str:
    return f"{topic}: {ask(topic).result()}"


@entrypoint()
def strict(topic: str) -> str:
    try:
        answer = interrupt(topic, timeout=60)
    except InterruptTimeoutError:
        return f"{topic}: timed out"
    return f"{topic}: {answer}"


@entrypoint()
def careless(topic: str) -> str:
    return str(interrupt(topic, timeout=60))


class Review(TypedDict):
    draft: str
    verdict: str


def review(state: Review) -> dict[str, str]:
    return {"verdict": interrupt(state["draft"], timeout=600, default="auto-approved")}


reviewing = StateGraph(Review)
reviewing.add_node("review", review)
reviewing.add_edge(START, "review")
reviewing.add_edge("review", END)
review_graph = reviewing.compile(name="review_graph")


@pytest.fixture(autouse=True)
def fresh() -> None:
    asked.clear()


async def time_out(server: tuple[CairnServer, str], clock: TestClock, seconds: float) -> None:
    clock.now += seconds
    await server[0].runs.timers.wake_due()


async def test_nobody_answers_so_the_interrupt_returns_its_default(
    server: tuple[CairnServer, str], client: Client, start_worker: StartWorker, clock: TestClock
) -> None:
    await start_worker([approval, ask])
    paused = await client.invoke("approval", "refund", thread_id="t-default")
    assert paused.state is RunState.INTERRUPTED
    [pending] = paused.interrupts
    assert pending.timeout is not None and pending.timeout.timestamp() == pytest.approx(NOW + 3600)
    assert pending.timeout_default == "no answer"
    state = await client.get_state("t-default")
    assert [i.timeout for i in state.interrupts] == [pending.timeout]
    await time_out(server, clock, 3599)
    assert len(await client.list_runs("t-default")) == 1  # not before its time
    await time_out(server, clock, 1)
    done = await latest_run(client, "t-default", 2)
    assert done.state is RunState.SUCCEEDED
    assert done.output == "refund: no answer"
    assert asked == ["refund", "refund"]


async def test_an_answer_in_time_wins_and_the_timeout_then_does_nothing(
    server: tuple[CairnServer, str], client: Client, start_worker: StartWorker, clock: TestClock
) -> None:
    await start_worker([approval, ask])
    await client.invoke("approval", "refund", thread_id="t-answer")
    await time_out(server, clock, 1800)
    done = await client.invoke("approval", Command(resume="yes"), thread_id="t-answer")
    assert done.output == "refund: yes"
    await time_out(server, clock, 7200)
    assert await server[0].store.next_wake_time() is None
    assert len(await client.list_runs("t-answer")) == 2


async def test_without_a_default_the_interrupt_raises_where_it_was_made(
    server: tuple[CairnServer, str], client: Client, start_worker: StartWorker, clock: TestClock
) -> None:
    await start_worker([strict, careless])
    await client.invoke("strict", "deploy", thread_id="t-strict")
    await client.invoke("careless", "deploy", thread_id="t-careless")
    await time_out(server, clock, 60)
    handled = await latest_run(client, "t-strict", 2)
    assert handled.output == "deploy: timed out"
    failed = await latest_run(client, "t-careless", 2)
    assert failed.state is RunState.FAILED
    assert failed.error is not None and failed.error.type == "InterruptTimeoutError"


async def test_a_graph_node_interrupt_times_out_with_its_default(
    server: tuple[CairnServer, str], client: Client, start_worker: StartWorker, clock: TestClock
) -> None:
    await start_worker([review_graph])
    paused = await client.invoke("review_graph", {"draft": "v1"}, thread_id="t-graph")
    assert paused.state is RunState.INTERRUPTED
    await time_out(server, clock, 600)
    done = await latest_run(client, "t-graph", 2)
    assert done.output == {"draft": "v1", "verdict": "auto-approved"}


async def fire_after(server: tuple[CairnServer, str], *, turns: int) -> int:
    """The timer loop's look, a few event-loop turns after the answer left:
    each race of the test starts the two at a different offset."""
    for _ in range(turns):
        await asyncio.sleep(0)
    return await server[0].runs.timers.wake_due()


async def test_an_answer_and_the_timeout_at_once_resume_the_run_once(
    server: tuple[CairnServer, str], client: Client, start_worker: StartWorker, clock: TestClock
) -> None:
    await start_worker([approval, ask])
    outcomes = []
    for n in range(12):
        thread_id = f"t-race-{n}"
        await client.invoke("approval", "refund", thread_id=thread_id)
        clock.now += 3600
        answer, _ = await asyncio.gather(
            client.invoke("approval", Command(resume="yes"), thread_id=thread_id),
            fire_after(server, turns=4 * n),
            return_exceptions=True,
        )
        done = await latest_run(client, thread_id, 2)
        assert done.state is RunState.SUCCEEDED
        if isinstance(answer, BaseException):
            # The timeout won: the answer found the interrupt answered.
            assert isinstance(answer, FailedPreconditionError | NotFoundError), answer
            assert done.output == "refund: no answer"
        else:
            assert answer.output == done.output == "refund: yes"
        outcomes.append(done.output)
        state = await client.get_state(thread_id)
        assert state.interrupts == ()
    assert await server[0].store.next_wake_time() is None
    for n in range(12):  # nothing resumed any of them a second time
        assert len(await client.list_runs(f"t-race-{n}")) == 2
    assert set(outcomes) <= {"refund: yes", "refund: no answer"}


def test_a_default_without_a_timeout_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(TypeError, match="give a timeout"):
        interrupt("approve?", default=False)
    with pytest.raises(ValueError, match="not negative"):
        interrupt("approve?", timeout=-1)
