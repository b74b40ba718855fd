"""CairnStore, LangGraph's BaseStore over StoreService, against a real server
on SQLite and on Postgres: every BaseStore method sync and async, checked
against LangGraph's own InMemoryStore doing the same; semantic search with a
deterministic fake embedding; TTLs; namespace validation as LangGraph's; and
a LangGraph graph and entrypoint that use it as their `store`.

LangGraph publishes no store test suite on PyPI (the installed packages
ship only the checkpointer conformance suite), so these tests compare with
InMemoryStore instead."""

from __future__ import annotations

import asyncio
import logging
import operator
import pathlib
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypedDict

import pytest

pytest.importorskip("langgraph.store.base")

from langchain_core.embeddings import Embeddings
from langgraph.config import get_store
from langgraph.func import entrypoint
from langgraph.graph import START, StateGraph
from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchItem,
    SearchOp,
)
from langgraph.store.base.embed import get_text_at_path
from langgraph.store.memory import InMemoryStore

from cairn import Client, InvalidArgumentError, UnauthenticatedError
from cairn._store_paths import texts_at_path
from cairn.langgraph import CairnStore
from cairn_server.server import ServerConfig, create_server
from tests import postgres
from tests.api.secured import secured_server, token
from tests.sdk.store_embeddings import DIMS, aembed_texts, embed_text, embed_texts


@pytest.fixture(params=["sqlite", "postgres"])
async def address(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> AsyncIterator[str]:
    with postgres.store_url(request.param, tmp_path) as url:
        server, port = await create_server(ServerConfig(address="127.0.0.1:0", store_url=url))
        try:
            yield f"127.0.0.1:{port}"
        finally:
            await server.stop(grace=0.5)


INDEX: Any = {"embed": embed_texts, "dims": DIMS, "fields": ["text"]}

DOCS = [
    (("docs", "en"), "otters", {"text": "otters swim in the river", "n": 1, "lang": "en"}),
    (("docs", "en"), "cats", {"text": "a cat chases a mouse", "n": 2, "lang": "en"}),
    (("docs", "fr"), "moon", {"text": "a rocket to the moon", "n": 3, "lang": "fr"}),
    (("docs", "fr", "old"), "fish", {"text": "fish in the river", "n": 4, "lang": "fr"}),
    (("users", "u-1"), "profile", {"name": "Ada", "tags": ["otter", "space"]}),
]
SEARCHES: list[dict[str, Any]] = [
    {"namespace_prefix": ("docs",), "filter": {"lang": "fr"}},
    {"namespace_prefix": ("docs",), "filter": {"n": {"$gt": 1, "$lte": 3}}},
    {"namespace_prefix": ("docs",), "filter": {"n": {"$ne": 2}}},
    {"namespace_prefix": ("docs", "en")},
    {"namespace_prefix": ()},
    {"namespace_prefix": ("docs",), "query": "an otter in the river", "limit": 2},
    {"namespace_prefix": ("docs",), "query": "rocket", "filter": {"lang": "fr"}},
]
BATCH = [
    GetOp(("docs", "en"), "otters"),
    SearchOp(("docs", "fr"), {"n": 3}),
    ListNamespacesOp((MatchCondition("prefix", ("users",)),)),
    PutOp(("batch",), "b", {"v": 1}),
    GetOp(("batch",), "b"),  # reads see the store before the batch's writes
]
LISTINGS: list[dict[str, Any]] = [
    {},
    {"prefix": ("docs",)},
    {"prefix": ("docs",), "max_depth": 2},
    {"suffix": ("old",)},
    {"prefix": ("docs", "*"), "suffix": ("fr",)},
    {"limit": 2, "offset": 1},
]


def item_view(item: Item | None) -> Any:
    return None if item is None else (item.namespace, item.key, item.value)


def ranked(found: list[SearchItem], query: bool) -> Any:
    """What both stores must agree on: with a query, the order (the fake
    embedding gives distinct scores here) and the scores; without, the set
    (InMemoryStore lists in insertion order, Cairn newest update first)."""
    if query:
        return [(f.key, round(f.score or 0, 3)) for f in found]
    return sorted((f.namespace, f.key, tuple(sorted(f.value))) for f in found)


# Misses are looked up in paths that hold items: InMemoryStore lists a path
# it was merely asked about, Cairn (and Postgres) only paths with items.


def exercise_sync(store: BaseStore) -> dict[str, Any]:
    for namespace, key, value in DOCS:
        store.put(namespace, key, value)
    store.put(("docs", "en"), "cats", {"text": "a cat chases a mouse", "n": 2, "lang": "en"})
    store.put(("docs", "en"), "gone", {"v": 1})
    store.delete(("docs", "en"), "gone")
    return {
        "gets": [item_view(store.get(ns, key)) for ns, key, _ in DOCS]
        + [
            item_view(store.get(("docs", "en"), "gone")),
            item_view(store.get(("docs", "en"), "missing")),
        ],
        "searches": [
            ranked(store.search(s["namespace_prefix"], **_options(s)), "query" in s)
            for s in SEARCHES
        ],
        "listings": [store.list_namespaces(**listing) for listing in LISTINGS],
        "batch": [*_batch_view(store.batch(BATCH)), item_view(store.get(("batch",), "b"))],
    }


async def exercise_async(store: BaseStore) -> dict[str, Any]:
    for namespace, key, value in DOCS:
        await store.aput(namespace, key, value)
    await store.aput(("docs", "en"), "cats", {"text": "a cat chases a mouse", "n": 2, "lang": "en"})
    await store.aput(("docs", "en"), "gone", {"v": 1})
    await store.adelete(("docs", "en"), "gone")
    gets = [item_view(await store.aget(ns, key)) for ns, key, _ in DOCS]
    gets += [
        item_view(await store.aget(("docs", "en"), "gone")),
        item_view(await store.aget(("docs", "en"), "missing")),
    ]
    return {
        "gets": gets,
        "searches": [
            ranked(await store.asearch(s["namespace_prefix"], **_options(s)), "query" in s)
            for s in SEARCHES
        ],
        "listings": [await store.alist_namespaces(**listing) for listing in LISTINGS],
        "batch": [
            *_batch_view(await store.abatch(BATCH)),
            item_view(await store.aget(("batch",), "b")),
        ],
    }


def _options(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "namespace_prefix"}


def _batch_view(results: list[Any]) -> list[Any]:
    view: list[Any] = []
    for result in results:
        if isinstance(result, Item) or result is None:
            view.append(item_view(result))
        elif result and isinstance(result[0], SearchItem):
            view.append(ranked(result, False))
        else:
            view.append(result)
    return view


async def test_every_method_matches_langgraphs_in_memory_store(address: str) -> None:
    expected_sync = exercise_sync(InMemoryStore(index=INDEX))
    expected_async = await exercise_async(InMemoryStore(index=INDEX))
    assert expected_sync == expected_async
    assert expected_sync["searches"][5][0][0] == "otters"  # the fake embedding ranks as meant

    with CairnStore(address, index=INDEX, namespace="sync") as store:
        got_sync = await asyncio.to_thread(exercise_sync, store)
    async with CairnStore(address, index=INDEX, namespace="async") as store:
        got_async = await exercise_async(store)
    assert got_sync == expected_sync
    assert got_async == expected_async


async def test_search_results_are_langgraph_items_with_scores(address: str) -> None:
    async with CairnStore(address, index=INDEX) as store:
        await store.aput(("d",), "otters", {"text": "otters by the river"})
        await store.aput(("d",), "moon", {"text": "the moon"})
        await store.aput(("d",), "raw", {"text": "otter"}, index=False)
        item = await store.aget(("d",), "otters")
        assert type(item) is Item
        found = await store.asearch(("d",), query="river otter")
        assert all(type(f) is SearchItem for f in found)
        assert [f.key for f in found] == ["otters", "moon", "raw"]
        assert found[0].score is not None and found[1].score is not None
        assert found[0].score > found[1].score and found[2].score is None
        assert found[0].dict()["namespace"] == ["d"]


class WordEmbeddings(Embeddings):
    """A LangChain Embeddings object that marks which texts were embedded as
    queries (they differ from document embeddings)."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        self.documents: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.documents.extend(texts)
        return [embed_text(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        self.queries.append(text)
        return embed_text(text)


async def test_langchain_embeddings_and_async_functions(address: str) -> None:
    embeddings = WordEmbeddings()
    with CairnStore(address, index={"embed": embeddings, "fields": ["text", "tags[*]"]}) as store:
        await asyncio.to_thread(store.put, ("e",), "k", {"text": "otter", "tags": ["moon", "fish"]})
        found = await asyncio.to_thread(store.search, ("e",), query="fish")
        assert found[0].score == pytest.approx(1.0)  # the "tags[*].1" vector
        assert embeddings.documents == ["otter", "moon", "fish"]
        assert embeddings.queries == ["fish"]

    async with CairnStore(address, index={"embed": aembed_texts, "dims": DIMS}) as store:
        await store.aput(("a",), "k", {"about": "otters"})
        assert (await store.asearch(("a",), query="otter"))[0].score is not None
        with pytest.raises(ValueError, match="async"):
            await asyncio.to_thread(store.put, ("a",), "k2", {"about": "cats"})


@pytest.mark.parametrize("namespace", [("foo.bar",), ("foo", ""), (123,), ("a\x00",)])
async def test_bad_namespaces_raise_invalid_namespace_error(address: str, namespace: Any) -> None:
    async with CairnStore(address) as store:
        with pytest.raises(InvalidNamespaceError):
            await store.aput(namespace, "k", {"v": 1})
        with pytest.raises(InvalidNamespaceError):
            await store.aget(namespace, "k")
        with pytest.raises(InvalidNamespaceError):
            await store.adelete(namespace, "k")
        with pytest.raises(InvalidNamespaceError):
            await store.asearch(namespace)
        with pytest.raises(InvalidNamespaceError):
            await store.alist_namespaces(prefix=namespace)
        with pytest.raises(InvalidNamespaceError):  # ops given straight to batch too
            await store.abatch([GetOp(namespace, "k")])
        with pytest.raises(InvalidNamespaceError):
            await asyncio.to_thread(store.batch, [PutOp(namespace, "k", {"v": 1})])
        with pytest.raises(InvalidNamespaceError):
            await store.aput(("langgraph", "x"), "k", {"v": 1})
        with pytest.raises(InvalidNamespaceError):
            await store.abatch([PutOp(("langgraph",), "k", {"v": 1})])
        assert await store.alist_namespaces() == []


async def test_errors_of_the_service_are_typed(address: str) -> None:
    async with CairnStore(address) as store:
        with pytest.raises(InvalidArgumentError):
            await store.asearch(("a",), filter={"n": {"$regex": "x"}})
        with pytest.raises(InvalidArgumentError):
            await asyncio.to_thread(store.search, ("a",), filter={"n": {"$regex": "x"}})


async def test_thousands_of_calls_at_once_wait_for_a_slot_not_for_a_failover(
    address: str, caplog: pytest.LogCaptureFixture
) -> None:
    # As a LangGraph app that gathers many store reads: more than the server
    # takes at once on one connection, none taken for an outage.
    async with CairnStore(address, failover_timeout=5) as store:
        await store.aput(("flood",), "k", {"v": 1})
        with caplog.at_level(logging.INFO):
            found = await asyncio.gather(*(store.aget(("flood",), "k") for _ in range(5000)))
    assert all(item is not None and item.value == {"v": 1} for item in found)
    assert [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()] == []


async def test_ttl(address: str) -> None:
    assert CairnStore.supports_ttl
    ttl: Any = {"default_ttl": 60, "refresh_on_read": False}
    async with CairnStore(address, ttl=ttl) as store, Client(address) as client:
        await store.aput(("t",), "default", {"v": 1})
        await store.aput(("t",), "none", {"v": 1}, ttl=None)
        await store.aput(("t",), "short", {"v": 1}, ttl=1 / 60)
        seen = await client.store.aget(("t",), "default", refresh_ttl=False)
        assert seen is not None and seen.expires_at is not None
        assert abs((seen.expires_at - seen.updated_at).total_seconds() - 3600) < 1
        none = await client.store.aget(("t",), "none")
        assert none is not None and none.expires_at is None

        # refresh_on_read False: CairnStore's reads leave the expiry alone.
        await store.aget(("t",), "default")
        await store.asearch(("t",))
        again = await client.store.aget(("t",), "default", refresh_ttl=False)
        assert again is not None and again.expires_at == seen.expires_at
        # Asked for explicitly, a read refreshes.
        deadline = time.monotonic() + 10
        while True:
            await store.aget(("t",), "default", refresh_ttl=True)
            moved = await client.store.aget(("t",), "default", refresh_ttl=False)
            assert moved is not None and moved.expires_at is not None
            if moved.expires_at > seen.expires_at:
                break
            assert time.monotonic() < deadline, "a refreshing read never moved the expiry"
            await asyncio.sleep(0.05)

        deadline = time.monotonic() + 15
        while await store.aget(("t",), "short") is not None:
            assert time.monotonic() < deadline, "an item with a 1 s TTL did not expire"
            await asyncio.sleep(0.1)
        assert sorted(f.key for f in await store.asearch(("t",))) == ["default", "none"]
        assert await asyncio.to_thread(store.get, ("t",), "short") is None


def test_texts_at_path_are_langgraphs() -> None:
    value = {
        "text": "hello",
        "n": 3,
        "flag": True,
        "none": None,
        "a": {"b": {"c": "deep"}, "list": [1, 2]},
        "tags": ["x", "y", "z"],
        "items": [{"t": "one", "k": 1}, {"t": "two"}, {"k": 3}],
        "ü": "unicode é",
    }
    paths = [
        "$",
        "text",
        "n",
        "flag",
        "none",
        "missing",
        "a",
        "a.b.c",
        "a.list",
        "a.list[1]",
        "tags",
        "tags[0]",
        "tags[-1]",
        "tags[*]",
        "tags[9]",
        "tags[x]",
        "items[*].t",
        "items[*]",
        "items[0].k",
        "*",
        "a.*",
        "{text,n}",
        "{text,a.b.c,missing}",
        "items[*].{t,k}",
        "ü",
        "text[0]",
        "{a}",
        "items[*].*",
        "[0]",
        "a..b.c",
        ".text",
        "tags[",
        "{text",
        "items[-1].k",
        "tags[-9]",
    ]
    for path in paths:
        assert texts_at_path(value, path) == get_text_at_path(value, path), path


class State(TypedDict):
    user: str
    notes: Annotated[list[str], operator.add]


def remember(state: State, *, store: BaseStore) -> dict[str, Any]:
    store.put(("users", state["user"]), "last", {"note": "likes otters"})
    return {"notes": ["remembered"]}


def recall(state: State) -> dict[str, Any]:
    item = get_store().get(("users", state["user"]), "last")
    return {"notes": [item.value["note"] if item else "nothing"]}


def build() -> Any:
    builder = StateGraph(State)
    builder.add_node("remember", remember)
    builder.add_node("recall", recall)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", "recall")
    return builder


async def test_a_langgraph_graph_and_entrypoint_use_it(address: str) -> None:
    with CairnStore(address) as store:
        graph = build().compile(store=store)
        out = await asyncio.to_thread(graph.invoke, {"user": "u-1", "notes": []})
        assert out["notes"] == ["remembered", "likes otters"]

    async with CairnStore(address) as store:

        @entrypoint(store=store)
        async def lookup(user: str, *, store: BaseStore) -> str:
            item = await store.aget(("users", user), "last")
            return item.value["note"] if item else "nothing"

        assert await lookup.ainvoke("u-1") == "likes otters"
        assert await lookup.ainvoke("u-2") == "nothing"
        graph = build().compile(store=store)
        out = await graph.ainvoke({"user": "u-3", "notes": []})
        assert out["notes"] == ["remembered", "likes otters"]
    async with Client(address) as client:  # native Cairn code sees LangGraph's memories
        assert await client.store.alist_namespaces() == [
            ("users", "u-1"),
            ("users", "u-3"),
        ]


async def test_credentials_and_namespace_are_sent_sync_and_async(tmp_path: pathlib.Path) -> None:
    async with secured_server(tmp_path) as served:
        writer = token("alice", "team-a:writer")
        async with CairnStore(served.address, token=writer, namespace="team-a") as store:
            await store.aput(("m",), "async", {"v": 1})
            await asyncio.to_thread(store.put, ("m",), "sync", {"v": 2})
            found = await asyncio.to_thread(store.search, ("m",))
            assert sorted(f.key for f in found) == ["async", "sync"]
        reader = token("bob", "team-b:writer")
        async with CairnStore(served.address, token=reader, namespace="team-b") as other:
            assert await other.asearch(("m",)) == []
        async with CairnStore(served.address, namespace="team-a") as anonymous:
            with pytest.raises(UnauthenticatedError):
                await anonymous.aget(("m",), "async")
            with pytest.raises(UnauthenticatedError):
                await asyncio.to_thread(anonymous.get, ("m",), "sync")
