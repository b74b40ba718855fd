"""Breakpoints (interrupt_before / interrupt_after) and UpdateState, as
LangGraph has them: a resume (input None) always gets past the breakpoint it
stopped at, also after update_state, and interrupt_after on the last node stops
the run with nothing next. Against a real server and an in-process worker."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

import pytest

from cairn import END, START, Client, RunState, StateGraph, ThreadStatus


class ChainState(TypedDict):
    value: int
    log: Annotated[list, operator.add]


def add_one(state: ChainState) -> dict:
    return {"value": state["value"] + 1, "log": ["a"]}


def double(state: ChainState) -> dict:
    return {"value": state["value"] * 2, "log": ["b"]}


def chain(name: str, **breakpoints: object) -> object:
    return (
        StateGraph(ChainState)
        .add_node("a", add_one)
        .add_node("b", double)
        .add_edge(START, "a")
        .add_edge("a", "b")
        .add_edge("b", END)
        .compile(name=name, **breakpoints)  # type: ignore[arg-type]
    )


before_b = chain("bp_before_b", interrupt_before=["b"])
after_b = chain("bp_after_b", interrupt_after=["b"])
before_all = chain("bp_before_all", interrupt_before="*")
after_all = chain("bp_after_all", interrupt_after="*")

START_INPUT = {"value": 1, "log": []}


@pytest.mark.parametrize("as_node", ["", "a"])
async def test_update_state_at_a_breakpoint_then_resume_runs_the_node(
    client: Client, start_worker, as_node: str
) -> None:
    await start_worker([before_b])
    run = await client.invoke(before_b, START_INPUT, thread_id="t")
    assert run.state is RunState.INTERRUPTED and run.interrupts == ()
    updated = await client.update_state("t", {"value": 10}, as_node=as_node)
    assert updated.next == ("b",)
    assert updated.values == {"value": 10, "log": ["a"]}
    run = await client.invoke(before_b, None, thread_id="t")
    assert run.state is RunState.SUCCEEDED
    assert run.output == {"value": 20, "log": ["a", "b"]}
    assert (await client.get_state("t")).next == ()


async def test_several_updates_at_a_breakpoint_then_resume_runs_the_node(
    client: Client, start_worker
) -> None:
    await start_worker([before_b])
    await client.invoke(before_b, START_INPUT, thread_id="t")
    await client.update_state("t", {"value": 10})
    await client.update_state("t", {"value": 20})
    run = await client.invoke(before_b, None, thread_id="t")
    assert run.output == {"value": 40, "log": ["a", "b"]}


async def test_update_state_as_the_stopped_node_ends_the_run(client: Client, start_worker) -> None:
    await start_worker([before_b])
    await client.invoke(before_b, START_INPUT, thread_id="t")
    updated = await client.update_state("t", {"value": 10}, as_node="b")
    assert updated.next == ()
    # As LangGraph: b counts as done; resuming ends the run with the state.
    run = await client.invoke(before_b, None, thread_id="t")
    assert run.state is RunState.SUCCEEDED
    assert run.output == {"value": 10, "log": ["a"]}


async def test_a_resume_after_update_state_on_a_finished_thread_passes_the_breakpoint(
    client: Client, start_worker
) -> None:
    await start_worker([before_b])
    await client.invoke(before_b, START_INPUT, thread_id="t")
    await client.invoke(before_b, None, thread_id="t")
    updated = await client.update_state("t", {"value": 3}, as_node="a")
    assert updated.next == ("b",)
    run = await client.invoke(before_b, None, thread_id="t")
    assert run.state is RunState.SUCCEEDED
    assert run.output == {"value": 6, "log": ["a", "b", "b"]}


async def test_interrupt_after_the_last_node_stops_with_nothing_next(
    client: Client, start_worker
) -> None:
    await start_worker([after_b])
    run = await client.invoke(after_b, START_INPUT, thread_id="t")
    assert run.state is RunState.INTERRUPTED and run.interrupts == ()
    state = await client.get_state("t")
    assert state.values == {"value": 4, "log": ["a", "b"]}
    assert state.next == () and state.tasks == ()
    assert (await client.get_thread("t")).status is ThreadStatus.INTERRUPTED
    history = await client.get_state_history("t")
    assert [s.metadata["step"] for s in history] == [2, 1, 0, -1]
    # As LangGraph: the resume ends the run with the state, and writes no checkpoint.
    run = await client.invoke(after_b, None, thread_id="t")
    assert run.state is RunState.SUCCEEDED
    assert run.output == {"value": 4, "log": ["a", "b"]}
    assert len(await client.get_state_history("t")) == len(history)
    assert (await client.get_thread("t")).status is ThreadStatus.IDLE


async def test_update_state_after_the_last_node_then_resume(client: Client, start_worker) -> None:
    await start_worker([after_b])
    await client.invoke(after_b, START_INPUT, thread_id="t")
    updated = await client.update_state("t", {"value": 100})
    assert updated.next == ()
    run = await client.invoke(after_b, None, thread_id="t")
    assert run.state is RunState.SUCCEEDED
    assert run.output == {"value": 100, "log": ["a", "b"]}


async def test_interrupt_before_every_node_with_update_state_at_each_stop(
    client: Client, start_worker
) -> None:
    await start_worker([before_all])
    run = await client.invoke(before_all, START_INPUT, thread_id="t")
    assert run.state is RunState.INTERRUPTED
    assert (await client.get_state("t")).next == ("a",)
    # Without as_node: the update is as __start__, the node that wrote last.
    assert (await client.update_state("t", {"value": 5})).next == ("a",)
    run = await client.invoke(before_all, None, thread_id="t")
    assert run.state is RunState.INTERRUPTED
    state = await client.get_state("t")
    assert state.next == ("b",) and state.values == {"value": 6, "log": ["a"]}
    assert (await client.update_state("t", {"value": 7})).next == ("b",)
    run = await client.invoke(before_all, None, thread_id="t")
    assert run.state is RunState.SUCCEEDED
    assert run.output == {"value": 14, "log": ["a", "b"]}


async def test_interrupt_after_every_node_with_update_state(client: Client, start_worker) -> None:
    await start_worker([after_all])
    run = await client.invoke(after_all, START_INPUT, thread_id="t")
    assert run.state is RunState.INTERRUPTED
    state = await client.get_state("t")
    assert state.next == ("b",) and state.values == {"value": 2, "log": ["a"]}
    assert (await client.update_state("t", {"value": 5}, as_node="a")).next == ("b",)
    run = await client.invoke(after_all, None, thread_id="t")
    assert run.state is RunState.INTERRUPTED
    state = await client.get_state("t")
    assert state.next == () and state.values == {"value": 10, "log": ["a", "b"]}
    run = await client.invoke(after_all, None, thread_id="t")
    assert run.state is RunState.SUCCEEDED
    assert run.output == {"value": 10, "log": ["a", "b"]}


# --- a subgraph node stopped after its own last node ----------------------------------------


class Count(TypedDict):
    count: int


def bump(state: Count) -> dict:
    return {"count": state["count"] + 1}


stepper = (
    StateGraph(Count)
    .add_sequence([("one", bump), ("two", bump)])
    .add_edge(START, "one")
    .compile(name="bp_stepper_after", interrupt_after=["two"])
)

host = (
    StateGraph(Count)
    .add_node("inner", stepper)
    .add_node("after", bump)
    .add_edge(START, "inner")
    .add_edge("inner", "after")
    .compile(name="bp_host_after")
)


async def test_interrupt_after_a_subgraphs_last_node_stops_its_host(
    client: Client, start_worker
) -> None:
    await start_worker([host])
    run = await client.invoke(host, {"count": 0}, thread_id="t")
    assert run.state is RunState.INTERRUPTED and run.interrupts == ()
    state = await client.get_state("t")
    assert state.next == ("inner",) and state.values == {"count": 0}
    # As LangGraph: the resume ends the subgraph, and its host goes on.
    run = await client.invoke(host, None, thread_id="t")
    assert run.state is RunState.SUCCEEDED
    assert run.output == {"count": 3}
