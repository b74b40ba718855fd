"""StateGraph runs through the service's superstep engine, against a real
server and an in-process worker."""

from __future__ import annotations

import collections
import operator
from typing import Annotated, TypedDict

import pytest

from cairn import (
    END,
    START,
    Client,
    Command,
    RunFailedError,
    RunState,
    Send,
    StateGraph,
    interrupt,
    task,
)

runs: collections.Counter[str] = collections.Counter()


@pytest.fixture(autouse=True)
def reset() -> None:
    runs.clear()


class ChainState(TypedDict):
    value: int
    log: Annotated[list, operator.add]


def add_one(state: ChainState) -> dict:
    return {"value": state["value"] + 1, "log": ["a"]}


def double(state: ChainState) -> dict:
    return {"value": state["value"] * 2, "log": ["b"]}


chain = (
    StateGraph(ChainState)
    .add_node("a", add_one)
    .add_node("b", double)
    .add_edge(START, "a")
    .add_edge("a", "b")
    .add_edge("b", END)
    .compile(name="chain")
)


async def test_chain_applies_reducers_and_checkpoints_every_step(
    client: Client, start_worker
) -> None:
    await start_worker([chain])
    run = await client.invoke(chain, {"value": 1, "log": []}, thread_id="chain")
    assert run.output == {"value": 4, "log": ["a", "b"]}
    state = await client.get_state("chain")
    assert state.values == {"value": 4, "log": ["a", "b"]}
    assert state.next == ()
    history = await client.get_state_history("chain")
    assert [(s.metadata["source"], s.metadata["step"]) for s in history] == [
        ("loop", 2),
        ("loop", 1),
        ("loop", 0),
        ("input", -1),
    ]
    assert [s.next for s in history] == [(), ("b",), ("a",), ("__start__",)]
    assert history[1].values == {"value": 2, "log": ["a"]}
    assert history[1].metadata["writes"] == {"a": {"value": 2, "log": ["a"]}}


class LoopState(TypedDict):
    count: int


def inc(state: LoopState) -> dict:
    return {"count": state["count"] + 1}


def again(state: LoopState) -> str:
    return "inc" if state["count"] < 3 else END


loop = (
    StateGraph(LoopState)
    .add_node("inc", inc)
    .add_edge(START, "inc")
    .add_conditional_edges("inc", again)
    .compile(name="loop")
)


async def test_conditional_edge_loops_until_its_condition(client: Client, start_worker) -> None:
    await start_worker([loop])
    run = await client.invoke(loop, {"count": 0}, thread_id="loop")
    assert run.output == {"count": 3}


async def test_recursion_limit_raises_a_clear_error(client: Client, start_worker) -> None:
    await start_worker([loop])
    with pytest.raises(RunFailedError) as failure:
        await client.invoke(loop, {"count": -100}, thread_id="forever")
    assert failure.value.run.error.type == "GraphRecursionError"
    assert "Recursion limit of 25 reached" in failure.value.run.error.message
    assert "recursion_limit" in failure.value.run.error.message
    # The limit is the run's: a tighter one stops sooner, a higher one lets it finish.
    with pytest.raises(RunFailedError) as tight:
        await client.invoke(loop, {"count": 0}, thread_id="tight", recursion_limit=2)
    assert "Recursion limit of 2 reached" in tight.value.run.error.message
    run = await client.invoke(loop, {"count": -30}, thread_id="long", recursion_limit=40)
    assert run.output == {"count": 3}


class MapState(TypedDict):
    items: list
    results: Annotated[list, operator.add]


def fan_out(state: MapState) -> list:
    return [Send("square", {"item": item}) for item in state["items"]]


def square(arg: dict) -> dict:
    return {"results": [arg["item"] ** 2]}


map_reduce = (
    StateGraph(MapState)
    .add_node("square", square)
    .add_conditional_edges(START, fan_out)
    .add_edge("square", END)
    .compile(name="map_reduce")
)


async def test_send_map_reduce_over_100_items(client: Client, start_worker) -> None:
    await start_worker([map_reduce], max_concurrency=8)
    run = await client.invoke(map_reduce, {"items": list(range(100))}, thread_id="map")
    assert run.output["results"] == [i**2 for i in range(100)]


class JoinState(TypedDict):
    log: Annotated[list, operator.add]


def node_a(state: JoinState) -> dict:
    runs["a"] += 1
    return {"log": ["a"]}


def node_b(state: JoinState) -> dict:
    runs["b"] += 1
    if runs["b"] == 1:
        raise ConnectionError("b failed once")
    return {"log": ["b"]}


def node_c(state: JoinState) -> dict:
    return {"log": ["c"]}


parallel = (
    StateGraph(JoinState)
    .add_node("a", node_a)
    .add_node("b", node_b)
    .add_node("c", node_c)
    .add_edge(START, "a")
    .add_edge(START, "b")
    .add_edge(["a", "b"], "c")
    .add_edge("c", END)
    .compile(name="parallel")
)


async def test_failed_node_reruns_alone_and_the_join_waits(client: Client, start_worker) -> None:
    await start_worker([parallel])
    with pytest.raises(RunFailedError) as failure:
        await client.invoke(parallel, {"log": []}, thread_id="par")
    assert failure.value.run.error.type == "ConnectionError"
    state = await client.get_state("par")
    # As LangGraph: `next` lists only the node still to run; both stay tasks.
    assert state.next == ("b",)
    assert {t.name: t.result for t in state.tasks}["a"] == {"log": ["a"]}
    assert sorted(t.name for t in state.tasks) == ["a", "b"]
    run = await client.invoke(parallel, None, thread_id="par")
    assert run.output == {"log": ["a", "b", "c"]}
    assert (runs["a"], runs["b"]) == (1, 2)


class AskState(TypedDict):
    name: str
    answers: Annotated[list, operator.add]


@task
def lookup(name: str) -> str:
    runs["lookup"] += 1
    return name.upper()


def ask_twice(state: AskState) -> dict:
    loud = lookup(state["name"]).result()
    age = interrupt(f"age of {loud}?")
    city = interrupt(f"city of {loud}?")
    return {"answers": [age, city]}


asking = (
    StateGraph(AskState)
    .add_node("ask", ask_twice)
    .add_edge(START, "ask")
    .add_edge("ask", END)
    .compile(name="asking")
)


async def test_node_with_two_interrupts_resumed_twice(client: Client, start_worker) -> None:
    await start_worker([asking, lookup])
    first = await client.invoke(asking, {"name": "ada", "answers": []}, thread_id="ask")
    assert [i.value for i in first.interrupts] == ["age of ADA?"]
    second = await client.invoke(asking, Command(resume=36), thread_id="ask")
    assert [i.value for i in second.interrupts] == ["city of ADA?"]
    done = await client.invoke(asking, Command(resume="London"), thread_id="ask")
    assert done.output == {"name": "ada", "answers": [36, "London"]}
    assert runs["lookup"] == 1  # the task inside the node is replayed, not re-run


class TwoState(TypedDict):
    log: Annotated[list, operator.add]


def approve_x(state: TwoState) -> dict:
    return {"log": [f"x:{interrupt('x?')}"]}


def approve_y(state: TwoState) -> dict:
    return {"log": [f"y:{interrupt('y?')}"]}


two_approvals = (
    StateGraph(TwoState)
    .add_node("x", approve_x)
    .add_node("y", approve_y)
    .add_edge(START, "x")
    .add_edge(START, "y")
    .compile(name="two_approvals")
)


async def test_two_nodes_interrupted_in_one_step_resumed_by_id(
    client: Client, start_worker
) -> None:
    await start_worker([two_approvals])
    run = await client.invoke(two_approvals, {"log": []}, thread_id="two")
    ids = {i.value: i.id for i in run.interrupts}
    assert set(ids) == {"x?", "y?"}
    done = await client.invoke(
        two_approvals, Command(resume={ids["x?"]: "ok", ids["y?"]: "no"}), thread_id="two"
    )
    assert done.output == {"log": ["x:ok", "y:no"]}


breakpoints = (
    StateGraph(ChainState)
    .add_node("a", add_one)
    .add_node("b", double)
    .add_edge(START, "a")
    .add_edge("a", "b")
    .add_edge("b", END)
    .compile(name="breakpoints", interrupt_before=["b"], interrupt_after=["a"])
)


async def test_interrupt_before_and_after_breakpoints(client: Client, start_worker) -> None:
    await start_worker([breakpoints])
    run = await client.invoke(breakpoints, {"value": 1, "log": []}, thread_id="bp")
    assert run.state is RunState.INTERRUPTED
    assert (await client.get_state("bp")).next == ("b",)  # stopped after a
    # after a and before b are the same place: one resume passes both
    run = await client.invoke(breakpoints, None, thread_id="bp")
    assert run.state is RunState.SUCCEEDED
    assert run.output == {"value": 4, "log": ["a", "b"]}


before_only = (
    StateGraph(ChainState)
    .add_node("a", add_one)
    .add_node("b", double)
    .add_edge(START, "a")
    .add_edge("a", "b")
    .compile(name="before_only", interrupt_before=["b"])
)


async def test_interrupt_before_stops_then_continues(client: Client, start_worker) -> None:
    await start_worker([before_only])
    run = await client.invoke(before_only, {"value": 1, "log": []}, thread_id="before")
    assert run.state is RunState.INTERRUPTED and run.interrupts == ()
    state = await client.get_state("before")
    assert state.next == ("b",) and state.values == {"value": 2, "log": ["a"]}
    run = await client.invoke(before_only, None, thread_id="before")
    assert run.output == {"value": 4, "log": ["a", "b"]}


def jump(state: LoopState) -> Command:
    return Command(update={"count": state["count"] + 10}, goto="inc")


goto_graph = (
    StateGraph(LoopState)
    .add_node("jump", jump)
    .add_node("inc", inc)
    .add_edge(START, "jump")
    .compile(name="goto_graph")
)


async def test_command_goto_from_a_node(client: Client, start_worker) -> None:
    await start_worker([goto_graph])
    run = await client.invoke(goto_graph, {"count": 0}, thread_id="goto")
    assert run.output == {"count": 11}


async def test_graph_streams_updates_and_values(client: Client, start_worker) -> None:
    await start_worker([chain])
    parts = [
        (event.mode, event.data)
        async for event in client.stream(
            chain, {"value": 1, "log": []}, thread_id="stream", stream_mode=["updates", "values"]
        )
        if event.mode != "lifecycle"
    ]
    assert parts == [
        ("values", {"value": 1, "log": []}),
        ("updates", {"a": {"value": 2, "log": ["a"]}}),
        ("values", {"value": 2, "log": ["a"]}),
        ("updates", {"b": {"value": 4, "log": ["b"]}}),
        ("values", {"value": 4, "log": ["a", "b"]}),
    ]
