"""`client.store`: the long-term memory store through the SDK's Client and
SyncClient, against a real server on SQLite and on Postgres. Every method
of LangGraph's BaseStore, async and sync; semantic search with a
deterministic fake embedding; TTLs; errors and namespaces."""

from __future__ import annotations

import asyncio
import logging
import pathlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from cairn import (
    Client,
    GetOp,
    InvalidArgumentError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchItem,
    SearchOp,
    Store,
    SyncClient,
)
from cairn_server.server import ServerConfig, create_server
from tests import postgres
from tests.e2e.processes import free_port
from tests.sdk.store_embeddings import DIMS, Calls, aembed_texts, embed_texts


@pytest.fixture(params=["sqlite", "postgres"])
async def address(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> AsyncIterator[str]:
    """A real server on each store."""
    with postgres.store_url(request.param, tmp_path) as url:
        server, port = await create_server(ServerConfig(address="127.0.0.1:0", store_url=url))
        try:
            yield f"127.0.0.1:{port}"
        finally:
            await server.stop(grace=0.5)


@pytest.fixture
async def store(address: str) -> AsyncIterator[Store]:
    async with Client(address) as client:
        yield client.store


async def test_put_get_replace_delete(store: Store) -> None:
    before = datetime.now(UTC)
    await store.aput(("users", "u-1"), "prefs", {"food": "fish", "n": 1})
    item = await store.aget(("users", "u-1"), "prefs")
    assert isinstance(item, Item)
    assert (item.namespace, item.key, item.value) == (
        ("users", "u-1"),
        "prefs",
        {"food": "fish", "n": 1},
    )
    assert before - timedelta(seconds=5) <= item.created_at <= datetime.now(UTC)
    assert item.updated_at == item.created_at
    assert item.expires_at is None
    assert item.dict()["namespace"] == ["users", "u-1"]

    await store.aput(("users", "u-1"), "prefs", {"food": "crab"})
    replaced = await store.aget(("users", "u-1"), "prefs")
    assert replaced is not None
    assert replaced.value == {"food": "crab"}
    assert replaced.created_at == item.created_at
    assert replaced.updated_at >= item.updated_at

    assert await store.aget(("users", "u-1"), "missing") is None
    assert await store.aget(("users",), "prefs") is None  # another path
    await store.adelete(("users", "u-1"), "prefs")
    assert await store.aget(("users", "u-1"), "prefs") is None
    await store.adelete(("users", "u-1"), "prefs")  # deleting nothing is fine


async def test_search_filters_pages_and_orders_newest_first(store: Store) -> None:
    for n in range(5):
        lang = "en" if n % 2 == 0 else "fr"
        await store.aput(("docs", lang), f"d{n}", {"n": n, "lang": lang, "meta": {"ok": n > 2}})
    await store.aput(("other",), "x", {"n": 99})

    found = await store.asearch(("docs",))
    assert all(isinstance(f, SearchItem) for f in found)
    assert [f.key for f in found] == ["d4", "d3", "d2", "d1", "d0"]  # newest update first
    assert all(f.score is None for f in found)
    assert [f.key for f in await store.asearch(("docs", "fr"))] == ["d3", "d1"]
    assert [f.key for f in await store.asearch((), filter={"lang": "en"})] == ["d4", "d2", "d0"]
    assert [f.key for f in await store.asearch(("docs",), filter={"n": {"$gte": 3}})] == [
        "d4",
        "d3",
    ]
    assert [f.key for f in await store.asearch(("docs",), filter={"meta": {"ok": True}})] == [
        "d4",
        "d3",
    ]
    assert [f.key for f in await store.asearch(("docs",), filter={"n": {"$ne": 2}})] == [
        "d4",
        "d3",
        "d1",
        "d0",
    ]
    assert [f.key for f in await store.asearch(("docs",), limit=2, offset=1)] == ["d3", "d2"]
    assert await store.asearch(("docs",), limit=0) == []
    assert len(await store.asearch(())) == 6


async def test_list_namespaces(store: Store) -> None:
    for path in [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "c", "f")]:
        await store.aput(path, "k", {"v": 1})
    assert await store.alist_namespaces() == [
        ("a", "b", "c"),
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
        ("a", "c", "f"),
    ]
    assert await store.alist_namespaces(prefix=("a", "b"), max_depth=3) == [
        ("a", "b", "c"),
        ("a", "b", "d"),
    ]
    assert await store.alist_namespaces(suffix=("f",)) == [("a", "c", "f")]
    assert await store.alist_namespaces(prefix=("a", "*", "d")) == [
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
    ]
    assert await store.alist_namespaces(prefix=("a",), suffix=("*", "i")) == [("a", "b", "d", "i")]
    assert await store.alist_namespaces(limit=2, offset=1) == [
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
    ]
    assert await store.alist_namespaces(max_depth=1) == [("a",)]
    assert await store.alist_namespaces(prefix=("z",)) == []


async def test_batch_reads_before_writes_in_order(store: Store) -> None:
    await store.aput(("b",), "old", {"v": 0})
    results = await store.abatch(
        [
            PutOp(("b",), "new", {"v": 1}),
            GetOp(("b",), "new"),
            GetOp(("b",), "old"),
            SearchOp(("b",)),
            ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("b",)),)),
            PutOp(("b",), "old", None),
            PutOp(("b",), "new", {"v": 2}),
        ]
    )
    assert results[0] is None and results[5] is None and results[6] is None
    assert results[1] is None  # the batch's reads see the store before its writes
    old = results[2]
    assert isinstance(old, Item) and old.value == {"v": 0}
    assert [f.key for f in results[3]] == ["old"]  # type: ignore[union-attr]
    assert results[4] == [("b",)]
    assert await store.aget(("b",), "old") is None
    new = await store.aget(("b",), "new")
    assert new is not None and new.value == {"v": 2}  # of two writes, the last wins
    assert await store.abatch([]) == []


async def test_a_batch_over_a_thousand_operations_goes_in_several_calls(store: Store) -> None:
    await store.abatch([PutOp(("many",), f"k{i:04}", {"i": i}) for i in range(1500)])
    results = await store.abatch([GetOp(("many",), f"k{i:04}") for i in range(1500)])
    assert [r.value["i"] for r in results if isinstance(r, Item)] == list(range(1500))


async def test_semantic_search_ranks_the_nearest_first(address: str) -> None:
    calls = Calls()
    index = {"embed": calls, "dims": DIMS, "fields": ["text"]}
    async with Client(address, store_index=index) as client:
        store = client.store
        await store.aput(
            ("docs",), "otters", {"text": "otters swim in the river", "kind": "animal"}
        )
        await store.aput(("docs",), "cats", {"text": "a cat chases a mouse", "kind": "animal"})
        await store.aput(("docs",), "moon", {"text": "a rocket to the moon", "kind": "space"})
        await store.aput(("docs",), "plain", {"text": "otter river fish"}, index=False)
        await store.aput(
            ("docs",), "tagged", {"text": "nothing", "tags": ["space", "rocket"]}, ["tags[*]"]
        )
        assert calls.texts == [
            "otters swim in the river",
            "a cat chases a mouse",
            "a rocket to the moon",
            "space",
            "rocket",
        ]

        found = await store.asearch(("docs",), query="an otter by the river")
        assert [f.key for f in found][:1] == ["otters"]
        scores = [f.score for f in found if f.score is not None]
        assert scores == sorted(scores, reverse=True) and len(scores) == 4
        assert found[-1].key == "plain" and found[-1].score is None  # no vector: last

        animals = await store.asearch(("docs",), query="moon rocket", filter={"kind": "animal"})
        assert {f.key for f in animals} == {"otters", "cats"}
        spaced = await store.asearch(("docs",), query="moon rocket", limit=2)
        assert [f.key for f in spaced] == ["moon", "tagged"]
        assert calls.texts[-3:] == ["an otter by the river", "moon rocket", "moon rocket"]

    async with Client(address) as plain:  # no index: the query is not used
        unranked = await plain.store.asearch(("docs",), query="otter")
        assert all(f.score is None for f in unranked) and len(unranked) == 5


async def test_an_async_embedding_function_and_whole_values(address: str) -> None:
    async with Client(address, store_index={"embed": aembed_texts}) as client:
        await client.store.aput(("w",), "fish", {"about": "fish", "n": 1})
        await client.store.aput(("w",), "cat", {"about": "cat", "n": 2})
        found = await client.store.asearch(("w",), query="fish")
        assert [f.key for f in found] == ["fish", "cat"]
        assert found[0].score is not None and found[0].score > found[1].score  # type: ignore[operator]


async def test_index_settings_are_checked(address: str) -> None:
    with pytest.raises(ValueError, match="embed"):
        Client(address, store_index={"dims": 3})
    with pytest.raises(ValueError, match="unknown index"):
        Client(address, store_index={"embed": embed_texts, "dimensions": 3})
    async with Client(address, store_index={"embed": embed_texts, "dims": 3}) as client:
        with pytest.raises(ValueError, match="dims"):
            await client.store.aput(("d",), "k", {"text": "otter"})
        assert await client.store.aget(("d",), "k") is None


async def test_ttl_expires_and_refreshes(address: str) -> None:
    async with Client(address) as client:
        store = client.store
        await store.aput(("t",), "forever", {"v": 1})
        await store.aput(("t",), "day", {"v": 1}, ttl=24 * 60)
        day = await store.aget(("t",), "day", refresh_ttl=False)
        assert day is not None and day.expires_at is not None
        expected = day.updated_at + timedelta(days=1)
        assert abs((day.expires_at - expected).total_seconds()) < 1

        # A read without refresh leaves the expiry; reads that refresh move it.
        again = await store.aget(("t",), "day", refresh_ttl=False)
        assert again is not None and again.expires_at == day.expires_at
        deadline = time.monotonic() + 10
        while True:
            refreshed = await store.aget(("t",), "day")
            assert refreshed is not None and refreshed.expires_at is not None
            if refreshed.expires_at > day.expires_at:
                break
            assert time.monotonic() < deadline, "a refreshing read never moved the expiry"
            await asyncio.sleep(0.05)
        assert refreshed.updated_at == day.updated_at  # a read is not an update

        await store.aput(("t",), "second", {"v": 1}, ttl=1 / 60)
        assert await store.aget(("t",), "second", refresh_ttl=False) is not None
        deadline = time.monotonic() + 15
        while await store.aget(("t",), "second", refresh_ttl=False) is not None:
            assert time.monotonic() < deadline, "an item with a 1 s TTL did not expire"
            await asyncio.sleep(0.1)
        assert [f.key for f in await store.asearch(("t",))] == ["day", "forever"]

        with pytest.raises(InvalidArgumentError):
            await store.aput(("t",), "short", {"v": 1}, ttl=0.001)  # under a second

    config = {"default_ttl": 60, "refresh_on_read": False}
    async with Client(address, store_ttl=config) as client:
        await client.store.aput(("t",), "default", {"v": 1})
        await client.store.aput(("t",), "kept", {"v": 1}, ttl=None)
        item = await client.store.aget(("t",), "default")
        assert item is not None and item.expires_at is not None
        assert abs((item.expires_at - item.updated_at).total_seconds() - 3600) < 1
        kept = await client.store.aget(("t",), "kept")
        assert kept is not None and kept.expires_at is None
    with pytest.raises(ValueError, match="unknown ttl"):
        Client(address, store_ttl={"ttl": 1})


async def test_bad_namespaces_fail_before_anything_is_sent(store: Store) -> None:
    for bad in [("a.b",), ("a", ""), ("a\x00",), (1,)]:
        with pytest.raises(ValueError):
            await store.aput(bad, "k", {"v": 1})  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await store.aget(bad, "k")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await store.adelete(bad, "k")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await store.asearch(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await store.alist_namespaces(prefix=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="langgraph"):
        await store.aput(("langgraph", "x"), "k", {"v": 1})
    with pytest.raises(ValueError, match="empty"):
        await store.aput((), "k", {"v": 1})
    assert await store.alist_namespaces() == []

    with pytest.raises(InvalidArgumentError) as refused:
        await store.asearch(("a",), filter={"n": {"$near": 1}})
    assert refused.value.metadata.get("field") == "filter.n"
    with pytest.raises(InvalidArgumentError, match="array") as refused:
        await store.asearch(("a",), filter={"n": {"$in": 1}})
    assert refused.value.metadata.get("field") == "filter.n"


async def test_memories_stay_in_their_namespace(address: str) -> None:
    async with Client(address, namespace="team-a") as a, Client(address) as default:
        await a.store.aput(("users",), "u", {"team": "a"})
        assert await default.store.aget(("users",), "u") is None
        assert await default.store.alist_namespaces() == []
        found = await a.store.asearch(("users",))
        assert [f.value for f in found] == [{"team": "a"}]


async def test_store_calls_fail_over_to_the_next_address(address: str) -> None:
    gone = f"127.0.0.1:{free_port()}"
    async with Client([gone, address], failover_timeout=10) as client:
        await client.store.aput(("f",), "k", {"v": 1})
        assert client.address == address
        assert await client.store.aget(("f",), "k") is not None


async def test_sync_methods_run_off_the_loop_and_refuse_on_it(store: Store) -> None:
    await asyncio.to_thread(store.put, ("s",), "k", {"v": 1})
    item = await asyncio.to_thread(store.get, ("s",), "k")
    assert item is not None and item.value == {"v": 1}
    assert [f.key for f in await asyncio.to_thread(store.search, ("s",))] == ["k"]
    assert await asyncio.to_thread(store.list_namespaces) == [("s",)]
    await asyncio.to_thread(store.delete, ("s",), "k")
    assert await asyncio.to_thread(store.batch, [GetOp(("s",), "k")]) == [None]
    with pytest.raises(RuntimeError, match="block"):
        store.get(("s",), "k")


async def test_async_methods_from_another_loop_run_on_the_stores(store: Store) -> None:
    def elsewhere() -> Item | None:
        async def use() -> Item | None:
            await store.aput(("o",), "k", {"v": 2})
            return await store.aget(("o",), "k")

        return asyncio.run(use())

    item = await asyncio.to_thread(elsewhere)
    assert item is not None and item.value == {"v": 2}


async def test_sync_client_store(address: str) -> None:
    # In a thread: the in-process server runs on this test's loop.
    await asyncio.to_thread(use_sync_client, address)


def use_sync_client(address: str) -> None:
    with SyncClient(address, store_index={"embed": embed_texts, "fields": ["text"]}) as client:
        store = client.store
        store.put(("sync", "a"), "otter", {"text": "otters in the river"})
        store.put(("sync", "b"), "rocket", {"text": "a rocket"}, ttl=60)
        item = store.get(("sync", "a"), "otter")
        assert item is not None and item.value == {"text": "otters in the river"}
        found = store.search(("sync",), query="river otter")
        assert [f.key for f in found] == ["otter", "rocket"]
        assert found[0].score is not None
        assert store.list_namespaces(prefix=("sync",)) == [("sync", "a"), ("sync", "b")]
        results = store.batch(
            [GetOp(("sync", "b"), "rocket"), PutOp(("sync", "b"), "rocket", None)]
        )
        assert isinstance(results[0], Item) and results[0].expires_at is not None
        assert store.get(("sync", "b"), "rocket") is None
        store.delete(("sync", "a"), "otter")
        assert store.search(("sync",)) == []


async def test_a_closed_sync_clients_store_says_so(address: str) -> None:
    def use() -> None:
        client = SyncClient(address)
        store = client.store
        client.close()
        with pytest.raises(RuntimeError, match="closed"):
            store.get(("x",), "k")

    await asyncio.to_thread(use)


async def test_thousands_of_calls_at_once_wait_for_a_slot_not_for_a_failover(
    address: str, caplog: pytest.LogCaptureFixture
) -> None:
    # More calls at once than the server takes on one connection: those it
    # would refuse wait in the SDK, instead of passing for an outage.
    async with Client(address, failover_timeout=5) as client:
        await client.store.aput(("flood",), "k", {"v": 1})
        with caplog.at_level(logging.INFO):
            found = await asyncio.gather(*(client.store.aget(("flood",), "k") for _ in range(5000)))
    assert all(item is not None and item.value == {"v": 1} for item in found)
    assert [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()] == []
