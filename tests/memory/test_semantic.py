"""Semantic search on every backend, with a deterministic fake embedding: the
items nearest to the query come first, scored with the cosine similarity of
their nearest vector (computed here independently), then the items with no
vector of the query's dimension."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest

from cairn_server.memory import MemoryStore
from tests.memory.support import NOW, delete, keys, put, search

if TYPE_CHECKING:
    from tests.store.conftest import Backend

VOCABULARY = ("cat", "dog", "pizza", "pasta", "rain", "sun")


def embed(text: str) -> tuple[float, ...]:
    """A bag of words over VOCABULARY: texts sharing words are near."""
    words = text.split()
    return tuple(float(words.count(word)) for word in VOCABULARY)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norms if norms else 0.0


TEXTS = {
    "pets": "cat dog cat",
    "dinner": "pizza pasta pizza",
    "weather": "rain sun rain",
    "mixed": "cat pizza rain",
    "catfood": "cat pasta",
    "sunny-dog": "dog sun sun",
}


async def put_texts(memory: MemoryStore, texts: dict[str, str], **extra: Any) -> dict[str, float]:
    """Each text as an item indexed on "text", one second apart; their update times."""
    updated = {}
    for i, (key, text) in enumerate(texts.items()):
        item = await put(
            memory,
            ("docs", "en"),
            key,
            {"text": text, "n": i, **extra},
            vectors={"text": embed(text)},
            now=NOW + i,
        )
        updated[key] = item.updated_at
    return updated


@pytest.mark.parametrize("query", ["cat cat dog", "pizza", "sun rain", "dog pasta"])
async def test_the_nearest_items_come_first_with_their_scores(
    memory: MemoryStore, query: str
) -> None:
    updated = await put_texts(memory, TEXTS)
    scores = {key: cosine(embed(query), embed(text)) for key, text in TEXTS.items()}
    expected = sorted(TEXTS, key=lambda key: (-scores[key], -updated[key]))

    found = await search(memory, ("docs",), query_vector=embed(query), limit=100, now=NOW + 10)

    assert [f.item.key for f in found] == expected
    for f in found:
        assert f.score == pytest.approx(scores[f.item.key], abs=1e-6)
    page = await search(memory, query_vector=embed(query), limit=2, offset=1, now=NOW + 10)
    assert [f.item.key for f in page] == expected[1:3]


async def test_an_item_scores_by_its_nearest_vector(memory: MemoryStore) -> None:
    await put(
        memory,
        ("docs",),
        "two-fields",
        {"title": "cat", "body": "pizza"},
        vectors={"title": embed("cat"), "body": embed("pizza pasta")},
    )
    await put(memory, ("docs",), "one-field", {"t": "x"}, vectors={"t": embed("pizza cat")})

    for query in ("cat", "pizza pasta", "pasta", "rain"):
        found = await search(memory, query_vector=embed(query))
        best = max(cosine(embed(query), embed("cat")), cosine(embed(query), embed("pizza pasta")))
        scores = {f.item.key: f.score for f in found}
        assert scores["two-fields"] == pytest.approx(best, abs=1e-6)
        assert scores["one-field"] == pytest.approx(
            cosine(embed(query), embed("pizza cat")), abs=1e-6
        )


async def test_items_without_a_vector_of_the_query_dimension_come_last(
    memory: MemoryStore,
) -> None:
    await put(memory, ("d",), "near", {}, vectors={"t": (1.0, 0.0, 0.0)}, now=NOW)
    await put(memory, ("d",), "far", {}, vectors={"t": (-1.0, 0.0, 0.0)}, now=NOW + 1)
    await put(memory, ("d",), "two-dims", {}, vectors={"t": (1.0, 0.0)}, now=NOW + 2)
    await put(memory, ("d",), "plain-old", {}, now=NOW + 3)
    await put(
        memory, ("d",), "mixed", {}, vectors={"a": (1.0, 1.0), "b": (0.0, 1.0, 0.0)}, now=NOW + 4
    )
    await put(memory, ("d",), "plain-new", {}, now=NOW + 5)

    found = await search(memory, query_vector=(1.0, 0.0, 0.0), now=NOW + 9)

    assert [(f.item.key, f.score) for f in found] == [
        ("near", pytest.approx(1.0)),
        ("mixed", pytest.approx(0.0, abs=1e-9)),  # its 3-dim vector; the 2-dim one is ignored
        ("far", pytest.approx(-1.0)),
        ("plain-new", None),
        ("plain-old", None),
        ("two-dims", None),
    ]
    tail = await search(memory, query_vector=(1.0, 0.0, 0.0), offset=2, limit=2, now=NOW + 9)
    assert [(f.item.key, f.score) for f in tail] == [
        ("far", pytest.approx(-1.0)),
        ("plain-new", None),
    ]


async def test_a_query_a_filter_and_a_prefix_work_together(memory: MemoryStore) -> None:
    for i, (key, text) in enumerate(TEXTS.items()):
        for lang in ("en", "fr"):
            await put(
                memory,
                ("docs", lang),
                key,
                {"text": text, "lang": lang, "odd": i % 2 == 1, "n": i},
                vectors={"text": embed(text)},
                now=NOW + i,
            )
    await put(memory, ("docs", "en"), "unindexed", {"odd": True, "n": 99}, now=NOW + 50)

    query = embed("cat dog")
    scores = {key: cosine(query, embed(text)) for key, text in TEXTS.items()}
    odd = [key for i, key in enumerate(TEXTS) if i % 2 == 1]
    expected = sorted(odd, key=lambda key: -scores[key])

    found = await search(
        memory,
        ("docs", "fr"),
        query_vector=query,
        filter={"odd": True, "n": {"$lt": 10}},
        limit=100,
        now=NOW + 60,
    )
    assert [(f.item.key, f.item.value["lang"]) for f in found] == [(k, "fr") for k in expected]
    assert [f.score for f in found] == [pytest.approx(scores[k], abs=1e-6) for k in expected]

    en = await search(memory, ("docs", "en"), query_vector=query, filter={"odd": True}, limit=100)
    assert [f.item.key for f in en] == [*expected, "unindexed"]
    assert en[-1].score is None
    paged = await search(
        memory, ("docs",), query_vector=query, filter={"odd": True}, limit=2, offset=1
    )
    assert [f.item.key for f in paged] == [expected[0], expected[1]]  # each key in en and fr


async def test_a_put_replaces_the_vectors_and_a_delete_removes_them(
    memory: MemoryStore, backend: Backend, store_url: str
) -> None:
    await put(memory, ("d",), "k", {}, vectors={"a": (1.0, 0.0), "b": (0.0, 1.0)})
    await put(memory, ("d",), "other", {}, vectors={"a": (1.0, 1.0)})
    assert backend.count_rows(store_url, "memory_vectors") == 3

    await put(memory, ("d",), "k", {}, vectors={"c": (-1.0, 0.0)}, now=NOW + 1)
    found = await search(memory, query_vector=(1.0, 0.0), now=NOW + 2)
    assert [(f.item.key, f.score) for f in found] == [
        ("other", pytest.approx(math.sqrt(0.5))),
        ("k", pytest.approx(-1.0)),
    ]
    assert backend.count_rows(store_url, "memory_vectors") == 2

    await put(memory, ("d",), "k", {}, now=NOW + 3)
    assert backend.count_rows(store_url, "memory_vectors") == 1
    await put(memory, ("d",), "k", {}, vectors={"c": (-1.0, 0.0)}, now=NOW + 4)
    assert await keys(memory) == ["k", "other"]
    assert await keys(memory, query_vector=(1.0, 0.0)) == ["other", "k"]

    assert await delete(memory, ("d",), "k", now=NOW + 5) is True
    assert backend.count_rows(store_url, "memory_vectors") == 1


async def test_zero_vectors_score_zero(memory: MemoryStore) -> None:
    await put(memory, ("d",), "zero", {}, vectors={"t": (0.0, 0.0)}, now=NOW)
    await put(memory, ("d",), "unit", {}, vectors={"t": (0.0, 2.0)}, now=NOW + 1)

    found = await search(memory, query_vector=(3.0, 4.0), now=NOW + 2)
    assert [(f.item.key, f.score) for f in found] == [
        ("unit", pytest.approx(0.8)),
        ("zero", pytest.approx(0.0)),
    ]
    by_zero = await search(memory, query_vector=(0.0, 0.0), now=NOW + 2)
    assert [(f.item.key, f.score) for f in by_zero] == [("unit", 0.0), ("zero", 0.0)]


async def test_expired_items_are_not_found_by_similarity(memory: MemoryStore) -> None:
    await put(memory, ("d",), "short", {}, vectors={"t": (1.0, 0.0)}, ttl=10, now=NOW)
    await put(memory, ("d",), "long", {}, vectors={"t": (0.0, 1.0)}, ttl=100, now=NOW)

    assert await keys(memory, query_vector=(1.0, 0.0), now=NOW + 5) == ["short", "long"]
    assert await keys(memory, query_vector=(1.0, 0.0), now=NOW + 15) == ["long"]
