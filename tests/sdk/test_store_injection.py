"""The memory store inside workflows: `get_store()` in tasks, entrypoints and
graph nodes, and the parameters LangGraph injects (`store`, `writer`) in
entrypoints and nodes. A memory written in one thread is read in another,
and by the client; the worker's namespace and index apply."""

from __future__ import annotations

import asyncio
import contextlib
import operator
import pathlib
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypedDict

import pytest

from cairn import (
    END,
    START,
    Client,
    PermissionDeniedError,
    StateGraph,
    Store,
    UnauthenticatedError,
    Worker,
    entrypoint,
    get_store,
    task,
)
from tests.api.secured import secured_server, token
from tests.sdk.store_embeddings import DIMS, embed_texts

USER = ("users", "u-42")


@task
def remember(fact: str) -> str:
    key = uuid.uuid5(uuid.NAMESPACE_URL, fact).hex
    get_store().put((*USER, "facts"), key, {"fact": fact})
    return key


@task
async def recall(limit: int) -> list[str]:
    found = await get_store().asearch((*USER, "facts"), limit=limit)
    return sorted(item.value["fact"] for item in found)


@entrypoint()
def learn(facts: list[str], *, store: Store) -> list[str]:
    keys = [remember(fact).result() for fact in facts]
    store.put(USER, "profile", {"name": "Ada", "facts": len(keys)})
    return keys


@entrypoint()
async def answer(question: str, *, store: Store, previous: Any = None) -> dict[str, Any]:
    profile = await store.aget(USER, "profile")
    facts = await recall(10)
    return {
        "question": question,
        "name": profile.value["name"] if profile else None,
        "facts": facts,
        "runs_before": previous["runs_before"] + 1 if previous else 0,
    }


async def test_a_memory_written_in_one_thread_is_read_in_another(
    client: Client, start_worker: Any
) -> None:
    await start_worker([remember, recall, learn, answer])
    learned = await client.invoke(learn, ["likes otters", "lives by a river"], thread_id="t-1")
    assert len(learned.output) == 2
    run = await client.invoke(answer, "who am I?", thread_id="t-2")
    assert run.output == {
        "question": "who am I?",
        "name": "Ada",
        "facts": ["likes otters", "lives by a river"],
        "runs_before": 0,
    }
    # The client reaches the same memories.
    profile = await client.store.aget(USER, "profile")
    assert profile is not None and profile.value == {"name": "Ada", "facts": 2}
    assert await client.store.alist_namespaces() == [USER, (*USER, "facts")]


class Notes(TypedDict):
    topic: str
    notes: Annotated[list[str], operator.add]


def research(state: Notes, *, store: Store, writer: Any) -> dict[str, Any]:
    writer({"researching": state["topic"]})
    store.put(("topics",), state["topic"], {"seen": True})
    return {"notes": [f"facts about {state['topic']}"]}


async def summarize(state: Notes, store: Store) -> dict[str, Any]:
    seen = await store.aget(("topics",), state["topic"])
    return {"notes": [f"seen before: {seen is not None}"]}


def route(state: Notes, *, store: Store) -> str:
    topics = store.list_namespaces()
    return "summarize" if topics == [("topics",)] else END


def notes_graph() -> Any:
    builder = StateGraph(Notes)
    builder.add_node("research", research)
    builder.add_node("summarize", summarize)
    builder.add_edge(START, "research")
    builder.add_conditional_edges("research", route, ["summarize", END])
    builder.add_edge("summarize", END)
    return builder.compile(name="notes")


async def test_graph_nodes_and_routers_get_store_and_writer(
    client: Client, start_worker: Any
) -> None:
    graph = notes_graph()
    await start_worker([graph])
    custom: list[Any] = []
    final: Any = None
    async for event in client.stream(
        graph, {"topic": "otters"}, thread_id="g-1", stream_mode=["custom", "values"]
    ):
        if event.mode == "custom":
            custom.append(event.data)
        elif event.mode == "values":
            final = event.data
    assert custom == [{"researching": "otters"}]
    assert final == {
        "topic": "otters",
        "notes": ["facts about otters", "seen before: True"],
    }
    assert (await client.store.aget(("topics",), "otters")) is not None


def test_a_node_may_declare_store_and_writer_keyword_only_without_defaults() -> None:
    builder = StateGraph(Notes)
    builder.add_node("research", research)  # would raise if the state were not its only input
    builder.add_edge(START, "research")
    assert builder.compile(name="kw").tasks["kw:research"].params == frozenset({"store", "writer"})


@entrypoint()
async def blocks_on_the_loop(key: str, *, store: Store) -> str:
    try:
        store.get(("x",), key)
    except RuntimeError as error:
        return str(error)
    return "no error"


@entrypoint()
def sync_body_from_another_loop(key: str) -> Any:
    async def use() -> Any:
        store = get_store()
        await store.aput(("x",), key, {"from": "a loop of the body's own"})
        item = await store.aget(("x",), key)
        return item.value if item else None

    return asyncio.run(use())


async def test_a_sync_call_on_the_workers_loop_is_refused_and_other_loops_are_served(
    client: Client, start_worker: Any
) -> None:
    await start_worker([blocks_on_the_loop, sync_body_from_another_loop])
    run = await client.invoke(blocks_on_the_loop, "k", thread_id="b-1")
    assert "block the loop" in run.output
    run = await client.invoke(sync_body_from_another_loop, "k", thread_id="b-2")
    assert run.output == {"from": "a loop of the body's own"}


def test_get_store_outside_a_task_raises() -> None:
    with pytest.raises(RuntimeError, match="inside a task"):
        get_store()


@task
def index_doc(doc: dict[str, str]) -> None:
    get_store().put(("docs",), doc["id"], doc)


@entrypoint()
def search_docs(query: str, *, store: Store) -> list[dict[str, Any]]:
    found = store.search(("docs",), query=query, limit=2)
    return [{"id": item.key, "scored": item.score is not None} for item in found]


@entrypoint()
def load_docs(docs: list[dict[str, str]]) -> int:
    for doc in docs:
        index_doc(doc).result()
    return len(docs)


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[Worker]:
    serving = asyncio.ensure_future(worker.run())
    try:
        await asyncio.wait_for(worker.connected.wait(), 10)
        yield worker
    finally:
        await worker.stop(grace=1)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(serving, 5)


async def test_the_workers_index_and_namespace_apply(address: str) -> None:
    index = {"embed": embed_texts, "dims": DIMS, "fields": ["text"]}
    functions = [index_doc, search_docs, load_docs]
    worker = Worker(address, functions=functions, namespace="team-a", store_index=index)
    async with running(worker), Client(address, namespace="team-a") as team:
        docs = [
            {"id": "otters", "text": "otters in the river"},
            {"id": "moon", "text": "a rocket to the moon"},
            {"id": "cats", "text": "a cat and a mouse"},
        ]
        assert (await team.invoke(load_docs, docs, thread_id="d-1")).output == 3
        run = await team.invoke(search_docs, "the moon rocket", thread_id="d-2")
        # "moon" shares two words with the query; the others none (a tie).
        assert run.output[0] == {"id": "moon", "scored": True}
        assert len(run.output) == 2 and all(found["scored"] for found in run.output)
        assert [f.key for f in await team.store.asearch(("docs",))] == ["cats", "moon", "otters"]
    async with Client(address) as default:
        assert await default.store.asearch(("docs",)) == []


@entrypoint()
def note_down(note: str, *, store: Store) -> int:
    store.put(("notes",), note, {"note": note})
    return len(store.search(("notes",)))


async def test_the_store_uses_the_workers_credentials_and_namespace(
    tmp_path: pathlib.Path,
) -> None:
    """A worker holding only `worker` in team-a writes memories there; a
    reader of team-a reads them and may not write; other namespaces see
    nothing."""
    keys = {"worker": ["team-a:worker"]}
    async with secured_server(tmp_path, api_keys=keys) as served:
        worker = Worker(
            served.address,
            functions=[note_down],
            api_key=served.api_keys["worker"],
            namespace="team-a",
        )
        writer = token("alice", "team-a:writer")
        reader = token("bob", "team-a:reader", "team-b:writer")
        async with running(worker), Client(served.address, token=writer, namespace="team-a") as a:
            assert (await a.invoke(note_down, "otters", thread_id="n-1")).output == 1
            assert (await a.invoke(note_down, "rivers", thread_id="n-2")).output == 2
        async with Client(served.address, token=reader, namespace="team-a") as b:
            assert sorted(f.key for f in await b.store.asearch(("notes",))) == ["otters", "rivers"]
            with pytest.raises(PermissionDeniedError):
                await b.store.aput(("notes",), "mine", {"note": "mine"})
        async with Client(served.address, token=reader, namespace="team-b") as other:
            assert await other.store.asearch(("notes",)) == []
        async with Client(served.address, namespace="team-a") as anonymous:
            with pytest.raises(UnauthenticatedError):
                await anonymous.store.aget(("notes",), "otters")
