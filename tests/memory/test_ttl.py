"""Expiry of memory items on every backend: items put with a ttl vanish from
every read when it runs out, reads that refresh move it, and the sweep
deletes expired items with their vectors. Time is passed explicitly."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cairn_server.memory import (
    GetItem,
    MemoryItem,
    MemoryStore,
    Operation,
    Result,
    ScoredItem,
    SearchItems,
)
from cairn_server.memory.sweeper import MemorySweeper
from tests.memory.support import NOW, SCOPE, delete, get, keys, namespaces, put, search

if TYPE_CHECKING:
    from tests.store.conftest import Backend


async def test_an_item_expires_ttl_seconds_after_its_put(memory: MemoryStore) -> None:
    stored = await put(memory, ("n", "m"), "k", {"v": 1}, ttl=60, now=NOW)
    await put(memory, ("n",), "forever", {"v": 2}, now=NOW)

    assert (stored.expires_at, stored.ttl) == (NOW + 60, 60)
    before = NOW + 59.5
    assert await get(memory, ("n", "m"), "k", now=before, refresh_ttl=False) == stored
    assert await keys(memory, now=before, refresh_ttl=False) == ["forever", "k"]
    assert await namespaces(memory, now=before) == [("n",), ("n", "m")]

    for after in (NOW + 60, NOW + 3600):
        assert await get(memory, ("n", "m"), "k", now=after) is None
        assert await keys(memory, now=after) == ["forever"]
        assert await namespaces(memory, now=after) == [("n",)]
        assert await namespaces(memory, prefix=("n", "m"), now=after) == []
    forever = await get(memory, ("n",), "forever", now=NOW + 10**9)
    assert forever is not None and forever.expires_at is None


async def test_a_get_refreshes_the_expiry_unless_told_not_to(memory: MemoryStore) -> None:
    await put(memory, ("n",), "k", {"v": 1}, ttl=60, now=NOW)

    kept = await get(memory, ("n",), "k", now=NOW + 50, refresh_ttl=False)
    assert kept is not None and kept.expires_at == NOW + 60
    refreshed = await get(memory, ("n",), "k", now=NOW + 55)
    assert refreshed is not None and refreshed.expires_at == NOW + 115

    # The refresh was stored: the item outlives its first expiry.
    later = await get(memory, ("n",), "k", now=NOW + 100, refresh_ttl=False)
    assert later is not None and later.expires_at == NOW + 115
    assert await get(memory, ("n",), "k", now=NOW + 115) is None


async def test_a_search_refreshes_the_items_it_returns(memory: MemoryStore) -> None:
    for i in range(3):
        await put(memory, ("n",), f"k{i}", {"i": i}, ttl=60, now=NOW + i)

    found = await search(memory, ("n",), limit=2, now=NOW + 30)
    assert [(f.item.key, f.item.expires_at) for f in found] == [("k2", NOW + 90), ("k1", NOW + 90)]
    unrefreshed = await search(memory, ("n",), now=NOW + 40, refresh_ttl=False)
    assert [(f.item.key, f.item.expires_at) for f in unrefreshed] == [
        ("k2", NOW + 90),
        ("k1", NOW + 90),
        ("k0", NOW + 60),  # beyond the first page: not refreshed
    ]
    assert await keys(memory, ("n",), now=NOW + 60) == ["k2", "k1"]


async def test_a_batch_refreshes_in_its_write_transaction(memory: MemoryStore) -> None:
    await put(memory, ("n",), "k", {"v": 1}, ttl=60, now=NOW)

    got, found = await memory.batch(
        SCOPE, [GetItem(("n",), "k"), SearchItems(("n",))], now=NOW + 30
    )

    assert isinstance(got, MemoryItem) and got.expires_at == NOW + 90
    assert found == [ScoredItem(got)]
    stored = await get(memory, ("n",), "k", now=NOW + 89, refresh_ttl=False)
    assert stored is not None and stored.expires_at == NOW + 90


async def test_a_put_replaces_the_ttl_and_an_expired_item_starts_anew(
    memory: MemoryStore,
) -> None:
    await put(memory, ("n",), "k", {"v": 1}, ttl=60, now=NOW)
    kept = await put(memory, ("n",), "k", {"v": 2}, now=NOW + 10)
    assert (kept.created_at, kept.expires_at, kept.ttl) == (NOW, None, None)

    await put(memory, ("n",), "gone", {"v": 1}, ttl=5, now=NOW)
    assert await delete(memory, ("n",), "gone", now=NOW + 5) is False
    await put(memory, ("n",), "late", {"v": 1}, ttl=5, now=NOW)
    anew = await put(memory, ("n",), "late", {"v": 2}, ttl=5, now=NOW + 20)
    assert (anew.created_at, anew.expires_at) == (NOW + 20, NOW + 25)


async def test_delete_expired_deletes_expired_items_and_their_vectors(
    memory: MemoryStore, backend: Backend, store_url: str
) -> None:
    vectors = {"text": (1.0, 0.0)}
    for i in range(5):
        await put(memory, ("n",), f"short{i}", {}, ttl=10, vectors=vectors, now=NOW)
    await put(memory, ("n",), "long", {}, ttl=100, vectors=vectors, now=NOW)
    await put(memory, ("n",), "forever", {}, vectors=vectors, now=NOW)
    await put(memory, ("n",), "other-scope", {}, ttl=10, vectors=vectors, now=NOW, scope="b")

    assert await memory.delete_expired(now=NOW + 9, limit=100) == 0
    assert await memory.delete_expired(now=NOW + 10, limit=4) == 4
    assert await memory.delete_expired(now=NOW + 10, limit=4) == 2  # of every scope
    assert await memory.delete_expired(now=NOW + 10, limit=4) == 0

    assert backend.count_rows(store_url, "memory_items") == 2
    assert backend.count_rows(store_url, "memory_vectors") == 2
    assert await keys(memory, now=NOW + 10) == ["forever", "long"]


async def test_the_sweeper_deletes_every_expired_item_page_by_page(
    memory: MemoryStore, backend: Backend, store_url: str
) -> None:
    for i in range(7):
        await put(memory, ("n",), f"k{i}", {}, ttl=10 + i, now=NOW)
    sweeper = MemorySweeper(memory, clock=lambda: NOW + 14, page_size=2)

    assert await sweeper.sweep(NOW + 12) == 3
    assert await sweeper.sweep() == 2  # at the clock's time
    assert await sweeper.sweep() == 0
    assert backend.count_rows(store_url, "memory_items") == 2


async def test_the_sweeper_runs_every_interval(
    memory: MemoryStore, backend: Backend, store_url: str
) -> None:
    await put(memory, ("n",), "k", {}, ttl=1, now=NOW)
    swept = asyncio.Event()

    class Watched(MemoryStore):
        """The memory store, telling when a sweep has deleted something."""

        async def batch(
            self, scope: str, operations: Sequence[Operation], *, now: float
        ) -> list[Result]:
            return await memory.batch(scope, operations, now=now)

        async def delete_expired(self, *, now: float, limit: int) -> int:
            deleted = await memory.delete_expired(now=now, limit=limit)
            if deleted:
                swept.set()
            return deleted

    sweeper = MemorySweeper(Watched(), clock=lambda: NOW + 1, interval=0.01)
    task = asyncio.create_task(sweeper.run())
    try:
        await asyncio.wait_for(swept.wait(), 10)
    finally:
        task.cancel()
    assert backend.count_rows(store_url, "memory_items") == 0
