"""Subgraphs: a compiled graph as a node, and a graph called from inside a
node, run by the service with their own checkpoints. LangGraph's
durable-execution starting points: a subgraph resume restarts the parent node
and, inside the subgraph, only the node that stopped."""

from __future__ import annotations

import collections
from typing import TypedDict

import pytest

from cairn import END, START, Client, Command, RunState, StateGraph, entrypoint, interrupt

runs: collections.Counter[str] = collections.Counter()


@pytest.fixture(autouse=True)
def reset() -> None:
    runs.clear()


# --- a graph called from inside a node -------------------------------------------------


class Inner(TypedDict):
    topic: str
    answer: str


def inner_first(state: Inner) -> dict:
    runs["inner_first"] += 1
    return {"topic": state["topic"].upper()}


def inner_ask(state: Inner) -> dict:
    runs["inner_ask"] += 1
    return {"answer": interrupt({"question": f"about {state['topic']}?"})}


inner = (
    StateGraph(Inner)
    .add_sequence([("first", inner_first), ("ask", inner_ask)])
    .add_edge(START, "first")
    .add_edge("ask", END)
    .compile(name="inner")
)


class Outer(TypedDict):
    topic: str
    result: str


def outer_call(state: Outer) -> dict:
    runs["outer_call"] += 1
    out = inner.invoke({"topic": state["topic"]})
    return {"result": f"{out['topic']}: {out['answer']}"}


outer = (
    StateGraph(Outer)
    .add_node("call", outer_call)
    .add_edge(START, "call")
    .add_edge("call", END)
    .compile(name="outer")
)


async def test_resume_restarts_the_calling_node_and_only_the_subgraph_node_that_stopped(
    client: Client, start_worker
) -> None:
    await start_worker([outer, inner])
    run = await client.invoke(outer, {"topic": "cats"}, thread_id="call")
    assert run.state is RunState.INTERRUPTED
    assert [i.value for i in run.interrupts] == [{"question": "about CATS?"}]
    assert runs == {"outer_call": 1, "inner_first": 1, "inner_ask": 1}

    done = await client.invoke(outer, Command(resume="yes"), thread_id="call")
    assert done.output == {"topic": "cats", "result": "CATS: yes"}
    # The parent node ran again; inside the subgraph only `ask` did.
    assert runs == {"outer_call": 2, "inner_first": 1, "inner_ask": 2}


async def test_a_called_graph_keeps_its_checkpoints_in_its_own_namespace(
    client: Client, start_worker
) -> None:
    await start_worker([outer, inner])
    await client.invoke(outer, {"topic": "cats"}, thread_id="ns")
    state = await client.get_state("ns")
    assert state.next == ("call",)
    [call] = state.tasks
    assert [i.value for i in call.interrupts] == [{"question": "about CATS?"}]
    assert [i.value for i in state.interrupts] == [{"question": "about CATS?"}]
    # The parent's history holds only its own checkpoints.
    history = await client.get_state_history("ns")
    assert {s.config["configurable"]["checkpoint_ns"] for s in history} == {""}


# --- a compiled graph as a node ----------------------------------------------------------


class Review(TypedDict):
    draft: str
    verdict: str
    notes: str  # the subgraph's own key: never reaches the parent


def review_read(state: Review) -> dict:
    runs["review_read"] += 1
    return {"notes": f"read {len(state['draft'])} chars"}


def review_decide(state: Review) -> dict:
    runs["review_decide"] += 1
    return {"verdict": interrupt({"draft": state["draft"], "notes": state["notes"]})}


review = (
    StateGraph(Review)
    .add_sequence([("read", review_read), ("decide", review_decide)])
    .add_edge(START, "read")
    .compile(name="review")
)


class Essay(TypedDict):
    topic: str
    draft: str
    verdict: str


def write(state: Essay) -> dict:
    runs["write"] += 1
    return {"draft": f"an essay about {state['topic']}"}


def publish(state: Essay) -> dict:
    runs["publish"] += 1
    return {"topic": state["topic"] + " (published)"}


essay = (
    StateGraph(Essay)
    .add_node("write", write)
    .add_node("review", review)
    .add_node("publish", publish)
    .add_edge(START, "write")
    .add_edge("write", "review")
    .add_edge("review", "publish")
    .compile(name="essay_with_review")
)


async def test_a_subgraph_node_resumes_at_its_stopped_node(client: Client, start_worker) -> None:
    await start_worker([essay])  # the subgraph is served with its parent
    run = await client.invoke(essay, {"topic": "cats"}, thread_id="node")
    assert [i.value for i in run.interrupts] == [
        {"draft": "an essay about cats", "notes": "read 19 chars"}
    ]
    state = await client.get_state("node")
    assert state.next == ("review",)
    assert state.values == {"topic": "cats", "draft": "an essay about cats"}

    [interrupt_] = run.interrupts
    done = await client.invoke(essay, Command(resume={interrupt_.id: "approved"}), thread_id="node")
    # Shared keys flow back; the subgraph's own `notes` does not.
    assert done.output == {
        "topic": "cats (published)",
        "draft": "an essay about cats",
        "verdict": "approved",
    }
    assert runs == {"write": 1, "review_read": 1, "review_decide": 2, "publish": 1}
    history = await client.get_state_history("node")
    assert history[1].metadata["writes"] == {
        "review": {"draft": "an essay about cats", "verdict": "approved"}
    }


async def test_subgraph_chunks_stream_under_its_namespace(client: Client, start_worker) -> None:
    await start_worker([essay])
    first = [
        (event.namespace, event.data)
        async for event in client.stream(
            essay, {"topic": "cats"}, thread_id="stream", stream_mode=["updates"], subgraphs=True
        )
        if event.mode == "updates"
    ]
    assert first[0] == ((), {"write": {"draft": "an essay about cats"}})
    [namespace] = {ns for ns, _ in first if ns}
    node, _, task_id = namespace[0].partition(":")
    assert node == "review" and task_id
    assert ((namespace[0],), {"read": {"notes": "read 19 chars"}}) in first
    # The interrupt shows inside the subgraph and in the parent.
    assert [data for ns, data in first if "__interrupt__" in data and ns == ()] != []

    rest = [
        (event.namespace, event.data)
        async for event in client.stream(
            essay, Command(resume="ok"), thread_id="stream", stream_mode=["updates"], subgraphs=True
        )
        if event.mode == "updates"
    ]
    assert ((namespace[0],), {"decide": {"verdict": "ok"}}) in rest
    assert rest[-2:] == [
        ((), {"review": {"draft": "an essay about cats", "verdict": "ok"}}),
        ((), {"publish": {"topic": "cats (published)"}}),
    ]


# --- breakpoints inside a subgraph node ----------------------------------------------------


class Count(TypedDict):
    count: int


def bump(state: Count) -> dict:
    runs["bump"] += 1
    return {"count": state["count"] + 1}


stepper = (
    StateGraph(Count)
    .add_sequence([("one", bump), ("two", bump)])
    .add_edge(START, "one")
    .compile(name="stepper", interrupt_before=["two"])
)

host = (
    StateGraph(Count)
    .add_node("inner", stepper)
    .add_node("after", bump)
    .add_edge(START, "inner")
    .add_edge("inner", "after")
    .compile(name="host")
)


async def test_a_breakpoint_inside_a_subgraph_node_stops_the_run(
    client: Client, start_worker
) -> None:
    await start_worker([host])
    run = await client.invoke(host, {"count": 0}, thread_id="bp")
    assert run.state is RunState.INTERRUPTED and run.interrupts == ()
    assert runs["bump"] == 1
    done = await client.invoke(host, None, thread_id="bp")
    assert done.output == {"count": 3}
    assert runs["bump"] == 3


# --- a graph called from an entrypoint ------------------------------------------------------


@entrypoint()
def research(topic: str) -> str:
    runs["research"] += 1
    out = inner.invoke({"topic": topic})
    return f"{out['topic']} -> {out['answer']}"


async def test_an_entrypoint_calls_a_graph_that_interrupts(client: Client, start_worker) -> None:
    await start_worker([research, inner])
    run = await client.invoke(research, "dogs", thread_id="fn")
    assert [i.value for i in run.interrupts] == [{"question": "about DOGS?"}]
    done = await client.invoke(research, Command(resume="good"), thread_id="fn")
    assert done.output == "DOGS -> good"
    assert runs == {"research": 2, "inner_first": 1, "inner_ask": 2}


async def test_without_subgraphs_only_the_parents_chunks_stream(
    client: Client, start_worker
) -> None:
    await start_worker([essay])
    chunks = [
        event.data
        async for event in client.stream(essay, {"topic": "cats"}, thread_id="plain")
        if event.mode == "updates"
    ]
    assert chunks[0] == {"write": {"draft": "an essay about cats"}}
    assert [list(c) for c in chunks[1:]] == [["__interrupt__"]]
