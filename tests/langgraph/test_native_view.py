"""LangGraph threads stored through CairnSaver are Cairn threads: ListThreads,
GetState, GetStateHistory, PruneThreads and DeleteThread see them, with
LangGraph's values decoded (or shown as typed blobs), and native runs refuse
to start on them."""

from __future__ import annotations

import contextlib
import operator
import pathlib
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypedDict

import pytest

pytest.importorskip("langgraph")

from langchain_core.messages import HumanMessage
from langgraph.func import entrypoint as lg_entrypoint
from langgraph.func import task as lg_task
from langgraph.graph import END as LG_END
from langgraph.graph import START as LG_START
from langgraph.graph import StateGraph as LgStateGraph
from langgraph.types import Command as LgCommand
from langgraph.types import interrupt as lg_interrupt

from cairn import Client, FailedPreconditionError, entrypoint
from cairn.langgraph import CairnSaver
from cairn_server.server import ServerConfig, create_server
from tests import postgres


@pytest.fixture(params=["sqlite", "postgres"])
async def store_address(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> AsyncIterator[str]:
    """A server on each store."""
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'cairn.db'}"
        else:
            url = stack.enter_context(postgres.fresh_schema())
        server, port = await create_server(ServerConfig(address="127.0.0.1:0", store_url=url))
        try:
            yield f"127.0.0.1:{port}"
        finally:
            await server.stop(grace=0.5)


class State(TypedDict):
    topic: str
    items: Annotated[list[str], operator.add]
    raw: bytes
    messages: list[Any]


def draft(state: State) -> dict[str, Any]:
    return {"items": ["draft"], "raw": b"\x00\x01", "messages": [HumanMessage("hi")]}


def review(state: State) -> dict[str, Any]:
    answer = lg_interrupt({"question": "ship it?"})
    return {"items": [answer]}


def build(saver: CairnSaver) -> Any:
    graph = LgStateGraph(State)
    graph.add_node("draft", draft)
    graph.add_node("review", review)
    graph.add_edge(LG_START, "draft")
    graph.add_edge("draft", "review")
    graph.add_edge("review", LG_END)
    return graph.compile(checkpointer=saver)


async def test_graph_thread_state_history_and_retention(store_address: str) -> None:
    saver = CairnSaver(store_address)
    client = Client(store_address)
    try:
        app = build(saver)
        config = {"configurable": {"thread_id": "lg-1"}}
        first = await app.ainvoke({"topic": "cats"}, config)
        assert first["__interrupt__"][0].value == {"question": "ship it?"}
        lg_state = await app.aget_state(config)

        threads = await client.list_threads()
        assert [t.thread_id for t in threads] == ["lg-1"]

        state = await client.get_state("lg-1")
        assert state.values["topic"] == "cats"
        assert state.values["items"] == ["draft"]
        assert state.values["raw"] == {"$blob": {"type": "bytes", "size": 2, "base64": "AAE="}}
        [message] = state.values["messages"]
        assert message["$type"] == "langchain_core.messages.human.HumanMessage"
        assert message["content"] == "hi"
        assert state.next == lg_state.next == ("review",)
        assert [i.value for i in state.interrupts] == [{"question": "ship it?"}]
        assert [i.id for i in state.interrupts] == [i.id for i in lg_state.interrupts]
        [task] = state.tasks
        assert (task.id, task.name) == (lg_state.tasks[0].id, "review")
        assert (
            state.config["configurable"]["checkpoint_id"]
            == (lg_state.config["configurable"]["checkpoint_id"])
        )
        assert state.metadata["step"] == 1

        history = await client.get_state_history("lg-1")
        lg_history = [s async for s in app.aget_state_history(config)]
        assert [s.metadata["step"] for s in history] == [s.metadata["step"] for s in lg_history]
        assert [s.next for s in history] == [s.next for s in lg_history]

        with pytest.raises(FailedPreconditionError) as refused:
            await client.invoke("anything", {"x": 1}, thread_id="lg-1")
        assert refused.value.reason == "LANGGRAPH_THREAD"

        final = await app.ainvoke(LgCommand(resume="yes"), config)
        assert final["items"] == ["draft", "yes"]
        done = await client.get_state("lg-1")
        assert done.values["items"] == ["draft", "yes"]
        assert done.next == ()

        assert await client.prune_threads(["lg-1"], keep_latest=1) == ["lg-1"]
        assert len([c async for c in saver.alist(config)]) == 1
        assert (await app.aget_state(config)).values["items"] == ["draft", "yes"]

        await client.delete_thread("lg-1")
        assert await saver.aget_tuple(config) is None
        assert await client.list_threads() == []
    finally:
        await saver.aclose()
        await client.close()


async def test_functional_thread_state(address: str, client: Client) -> None:
    saver = CairnSaver(address)
    try:

        @lg_task
        def double(x: int) -> int:
            return 2 * x

        @lg_entrypoint(checkpointer=saver)
        def workflow(x: int) -> int:
            doubled = double(x).result()
            more = lg_interrupt("how much more?")
            return doubled + more

        config = {"configurable": {"thread_id": "lg-f"}}
        await workflow.ainvoke(3, config)
        state = await client.get_state("lg-f")
        lg_state = await workflow.aget_state(config)
        assert state.next == lg_state.next == ("workflow",)
        assert [i.value for i in state.interrupts] == ["how much more?"]

        assert await workflow.ainvoke(LgCommand(resume=4), config) == 10
        done = await client.get_state("lg-f")
        assert done.values == (await workflow.aget_state(config)).values == 10
    finally:
        await saver.aclose()


async def test_native_threads_are_not_listed_by_the_saver(
    address: str, client: Client, start_worker: Any
) -> None:
    @entrypoint()
    def echo(value: Any) -> Any:
        return value

    await start_worker([echo])
    await client.invoke("echo", {"a": 1}, thread_id="native")
    saver = CairnSaver(address)
    try:
        assert [c async for c in saver.alist(None)] == []
        assert await saver.aget_tuple({"configurable": {"thread_id": "native"}}) is None
    finally:
        await saver.aclose()
