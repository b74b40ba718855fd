"""The memory store's conformance suite: LangGraph's BaseStore semantics on
every backend (sqlite, postgres)."""

from __future__ import annotations

from typing import Any

import pytest

from cairn_server.memory import (
    DeleteItem,
    GetItem,
    ListNamespaces,
    MemoryItem,
    MemoryStore,
    PutItem,
    ScoredItem,
    SearchItems,
)
from tests.memory.support import NOW, SCOPE, delete, get, keys, namespaces, put, search


async def test_put_then_get_returns_the_item_with_its_times(memory: MemoryStore) -> None:
    value = {"text": "likes tea", "tags": ["drink", "uk"], "meta": {"n": 1, "ok": True}}
    stored = await put(memory, ("users", "u1"), "pref", value, now=NOW)

    assert stored == MemoryItem(("users", "u1"), "pref", value, NOW, NOW)
    assert await get(memory, ("users", "u1"), "pref", now=NOW + 1) == stored
    assert await get(memory, ("users", "u1"), "other") is None
    assert await get(memory, ("users",), "pref") is None
    assert await get(memory, ("users", "u1", "x"), "pref") is None


async def test_values_keep_unicode_nesting_and_key_order(memory: MemoryStore) -> None:
    value = {"z": 'é 漢字 \u0000 "quoted"', "a": [1, 2.5, None, {"b": []}], "m": {}}
    await put(memory, ("n",), "k", value)

    item = await get(memory, ("n",), "k")

    assert item is not None
    assert item.value == value
    assert list(item.value) == ["z", "a", "m"]


async def test_a_second_put_replaces_the_value_and_keeps_created_at(memory: MemoryStore) -> None:
    await put(memory, ("n",), "k", {"v": 1}, now=NOW)
    second = await put(memory, ("n",), "k", {"w": 2}, now=NOW + 60)

    assert (second.created_at, second.updated_at, second.value) == (NOW, NOW + 60, {"w": 2})
    assert await get(memory, ("n",), "k", now=NOW + 61) == second


async def test_delete_removes_the_item_and_reports_whether_there_was_one(
    memory: MemoryStore,
) -> None:
    await put(memory, ("n",), "k", {"v": 1})
    await put(memory, ("n",), "keep", {"v": 2})

    assert await delete(memory, ("n",), "k") is True
    assert await delete(memory, ("n",), "k") is False
    assert await delete(memory, ("elsewhere",), "keep") is False
    assert await get(memory, ("n",), "k") is None
    assert await keys(memory) == ["keep"]


async def test_every_read_of_a_batch_sees_the_store_as_it_was_before_it(
    memory: MemoryStore,
) -> None:
    old = await put(memory, ("n",), "old", {"v": 0}, now=NOW)

    results = await memory.batch(
        SCOPE,
        [
            PutItem(("n",), "new", {"v": 1}),
            DeleteItem(("n",), "old"),
            GetItem(("n",), "new"),
            GetItem(("n",), "old"),
            SearchItems(("n",)),
            ListNamespaces(),
            PutItem(("m",), "other", {"v": 2}),
        ],
        now=NOW + 1,
    )

    assert results[2] is None
    assert results[3] == old
    assert results[4] == [ScoredItem(old)]
    assert results[5] == [("n",)]
    assert results[1] is True
    assert await keys(memory, now=NOW + 2) == ["other", "new"]


async def test_writes_of_a_batch_apply_in_order_and_the_last_wins(memory: MemoryStore) -> None:
    await put(memory, ("n",), "b", {"v": "old"}, now=NOW)

    results = await memory.batch(
        SCOPE,
        [
            PutItem(("n",), "a", {"v": 1}),
            PutItem(("n",), "a", {"v": 2}),
            DeleteItem(("n",), "b"),
            PutItem(("n",), "b", {"v": 3}),
            PutItem(("n",), "c", {"v": 4}),
            DeleteItem(("n",), "c"),
        ],
        now=NOW + 5,
    )

    assert [r.value if isinstance(r, MemoryItem) else r for r in results] == [
        {"v": 1},
        {"v": 2},
        True,
        {"v": 3},
        {"v": 4},
        True,  # the put before it in the batch
    ]
    a = await get(memory, ("n",), "a")
    b = await get(memory, ("n",), "b")
    assert a is not None and a.value == {"v": 2}
    assert b is not None and (b.value, b.created_at) == ({"v": 3}, NOW + 5)
    assert await get(memory, ("n",), "c") is None


async def test_a_scope_never_sees_another_scopes_items(memory: MemoryStore) -> None:
    await put(memory, ("shared", "path"), "k", {"owner": "a"}, scope="a")
    await put(memory, ("shared", "path"), "k", {"owner": "b"}, scope="b")
    await put(memory, ("only-b",), "k", {"owner": "b"}, scope="b")

    item = await get(memory, ("shared", "path"), "k", scope="a")
    assert item is not None and item.value == {"owner": "a"}
    assert await get(memory, ("only-b",), "k", scope="a") is None
    assert [f.item.value for f in await search(memory, scope="a")] == [{"owner": "a"}]
    assert await namespaces(memory, scope="a") == [("shared", "path")]

    assert await delete(memory, ("only-b",), "k", scope="a") is False
    assert await delete(memory, ("shared", "path"), "k", scope="b") is True
    assert await get(memory, ("shared", "path"), "k", scope="a") == item
    assert await namespaces(memory, scope="b") == [("only-b",)]


async def test_search_by_prefix_matches_whole_labels(memory: MemoryStore) -> None:
    for path, key in [
        (("a", "b"), "ab"),
        (("a", "b", "c"), "abc"),
        (("a", "bc"), "a-bc"),
        (("ab",), "ab-root"),
        (("b",), "b"),
    ]:
        await put(memory, path, key, {"key": key})

    assert sorted(await keys(memory, ("a", "b"))) == ["ab", "abc"]
    assert sorted(await keys(memory, ("a", "bc"))) == ["a-bc"]
    assert sorted(await keys(memory, ("a",))) == ["a-bc", "ab", "abc"]
    assert sorted(await keys(memory, ("a", "b", "c"))) == ["abc"]
    assert await keys(memory, ("a", "b", "c", "d")) == []
    assert len(await keys(memory, (), limit=100)) == 5


async def test_search_lists_newest_update_first_and_pages(memory: MemoryStore) -> None:
    for i, key in enumerate(["k0", "k1", "k2", "k3", "k4"]):
        await put(memory, ("n",), key, {"i": i}, now=NOW + i)
    await put(memory, ("n",), "k1", {"i": 9}, now=NOW + 10)  # updated last
    # Equal update times: by path, then key.
    await put(memory, ("n", "z"), "tie-b", {}, now=NOW - 5)
    await put(memory, ("n",), "tie-b", {}, now=NOW - 5)
    await put(memory, ("n",), "tie-a", {}, now=NOW - 5)

    everything = ["k1", "k4", "k3", "k2", "k0", "tie-a", "tie-b", "tie-b"]
    found = await search(memory, ("n",), limit=100)
    assert [f.item.key for f in found] == everything
    assert [f.item.namespace for f in found][-3:] == [("n",), ("n",), ("n", "z")]
    assert all(f.score is None for f in found)
    assert await keys(memory, ("n",), limit=2) == everything[:2]
    assert await keys(memory, ("n",), limit=3, offset=2) == everything[2:5]
    assert await keys(memory, ("n",), limit=10, offset=7) == everything[7:]
    assert await keys(memory, ("n",), offset=8) == []


FILTER_ITEMS: dict[str, dict[str, Any]] = {
    "tea": {"kind": "drink", "stars": 4, "tags": ["hot", "uk"], "by": {"name": "ann", "age": 30}},
    "beer": {"kind": "drink", "stars": 3.5, "tags": ["cold"], "by": {"name": "bob"}},
    "cake": {"kind": "food", "stars": 5, "tags": ["sweet"], "vegan": False},
    "bread": {"kind": "food", "stars": "n/a", "vegan": True},
    "flag": {"kind": "misc", "stars": True},
}


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({}, ["beer", "bread", "cake", "flag", "tea"]),
        ({"kind": "drink"}, ["beer", "tea"]),
        ({"kind": "drink", "stars": 4}, ["tea"]),
        ({"stars": 4.0}, ["tea"]),  # numbers equal by value
        ({"stars": 1}, []),  # true is not 1
        ({"stars": True}, ["flag"]),
        ({"vegan": False}, ["cake"]),
        ({"tags": ["hot", "uk"]}, ["tea"]),  # arrays must be equal
        ({"tags": ["hot"]}, []),
        ({"tags": ["uk", "hot"]}, []),
        ({"by": {"name": "ann"}}, ["tea"]),  # objects: a subset, recursively
        ({"by": {"name": "ann", "age": 31}}, []),
        ({"by": {"name": {"$ne": "ann"}}}, ["beer"]),
        ({"by": {}}, ["beer", "tea"]),
        ({"missing": None}, []),  # a missing field only matches $ne
        ({"stars": {"$eq": 5}}, ["cake"]),
        ({"stars": {"$ne": 5}}, ["beer", "bread", "flag", "tea"]),
        ({"vegan": {"$ne": True}}, ["beer", "cake", "flag", "tea"]),
        ({"stars": {"$gt": 3.5}}, ["cake", "tea"]),
        ({"stars": {"$gte": 3.5}}, ["beer", "cake", "tea"]),
        ({"stars": {"$lt": 4}}, ["beer"]),
        ({"stars": {"$lte": 4}}, ["beer", "tea"]),
        ({"stars": {"$gt": 3, "$lt": 5}}, ["beer", "tea"]),
        ({"stars": {"$gte": "a"}}, ["bread"]),  # strings with strings only
        ({"stars": {"$lt": "a"}}, []),
        ({"kind": {"$gt": "drink"}}, ["bread", "cake", "flag"]),
        ({"by": {"age": {"$gte": 30}}}, ["tea"]),
        ({"kind": "food", "vegan": {"$ne": True}}, ["cake"]),
        ({"tags": {"$eq": ["sweet"]}}, ["cake"]),
        # langgraphjs's $in / $nin: equal to one (none) of the array's elements
        ({"stars": {"$in": [4, 5]}}, ["cake", "tea"]),
        ({"stars": {"$in": [True, "n/a"]}}, ["bread", "flag"]),
        ({"tags": {"$in": [["cold"], ["sweet"]]}}, ["beer", "cake"]),
        ({"kind": {"$in": []}}, []),
        ({"kind": {"$nin": ["drink", "food"]}}, ["flag"]),
        ({"vegan": {"$nin": [True]}}, ["beer", "cake", "flag", "tea"]),  # missing: not in
        ({"by": {"name": {"$in": ["bob", "cy"]}}}, ["beer"]),
    ],
)
async def test_search_filters_as_langgraph_does(
    memory: MemoryStore, filter_: dict[str, Any], expected: list[str]
) -> None:
    for key, value in FILTER_ITEMS.items():
        await put(memory, ("items",), key, value)

    assert sorted(await keys(memory, ("items",), filter=filter_, limit=100)) == expected


async def test_a_filtered_search_pages_over_the_matching_items(memory: MemoryStore) -> None:
    for i in range(12):
        await put(memory, ("n",), f"k{i:02}", {"even": i % 2 == 0}, now=NOW + i)

    evens = ["k10", "k08", "k06", "k04", "k02", "k00"]
    assert await keys(memory, ("n",), filter={"even": True}, limit=2) == evens[:2]
    assert await keys(memory, ("n",), filter={"even": True}, limit=3, offset=2) == evens[2:5]
    assert await keys(memory, ("n",), filter={"even": True}, offset=5) == evens[5:]
    assert await keys(memory, ("n",), filter={"even": True}, offset=6) == []


async def test_list_namespaces_selects_cuts_sorts_and_pages(memory: MemoryStore) -> None:
    paths = [
        ("users", "u2", "memories"),
        ("users", "u1", "memories"),
        ("users", "u1", "prefs"),
        ("users", "u10", "memories"),
        ("teams", "t1", "memories"),
        ("teams", "t1"),
        ("users",),
    ]
    for path in paths:
        await put(memory, path, "k", {})
    await put(memory, ("users", "u1", "memories"), "k2", {})  # one path, two items

    assert await namespaces(memory) == sorted(paths)
    assert await namespaces(memory, prefix=("users",)) == [
        ("users",),
        ("users", "u1", "memories"),
        ("users", "u1", "prefs"),
        ("users", "u10", "memories"),
        ("users", "u2", "memories"),
    ]
    assert await namespaces(memory, prefix=("users", "u1")) == [
        ("users", "u1", "memories"),
        ("users", "u1", "prefs"),
    ]
    assert await namespaces(memory, suffix=("memories",)) == [
        ("teams", "t1", "memories"),
        ("users", "u1", "memories"),
        ("users", "u10", "memories"),
        ("users", "u2", "memories"),
    ]
    assert await namespaces(memory, prefix=("*", "t1")) == [
        ("teams", "t1"),
        ("teams", "t1", "memories"),
    ]
    assert await namespaces(memory, prefix=("users", "*", "prefs")) == [("users", "u1", "prefs")]
    assert await namespaces(memory, suffix=("*", "memories")) == [
        ("teams", "t1", "memories"),
        ("users", "u1", "memories"),
        ("users", "u10", "memories"),
        ("users", "u2", "memories"),
    ]
    assert await namespaces(memory, prefix=("users",), suffix=("u1", "*")) == [
        ("users", "u1", "memories"),
        ("users", "u1", "prefs"),
    ]
    assert await namespaces(memory, max_depth=1) == [("teams",), ("users",)]
    assert await namespaces(memory, prefix=("users",), max_depth=2) == [
        ("users",),
        ("users", "u1"),
        ("users", "u10"),
        ("users", "u2"),
    ]
    assert await namespaces(memory, limit=2) == sorted(paths)[:2]
    assert await namespaces(memory, limit=3, offset=2) == sorted(paths)[2:5]
    assert await namespaces(memory, max_depth=2, offset=1, limit=1) == [("users",)]


async def test_list_namespaces_prefix_matches_whole_labels(memory: MemoryStore) -> None:
    await put(memory, ("a", "bc"), "k", {})
    await put(memory, ("a", "b", "c"), "k", {})

    assert await namespaces(memory, prefix=("a", "b")) == [("a", "b", "c")]
    assert await namespaces(memory, suffix=("c",)) == [("a", "b", "c")]
