"""Semantic search on Postgres goes through pgvector, installed in another
schema than the store's; without pgvector it is refused and the rest works."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from cairn_server.memory import SearchItems, SemanticSearchUnavailable, open_memory
from cairn_server.memory.postgres import FIND_PGVECTOR, PostgresMemory, search_statement
from cairn_server.store import open_store
from tests import postgres
from tests.memory.support import NOW, SCOPE, get, keys, put


@pytest.fixture
async def memory() -> AsyncIterator[PostgresMemory]:
    with postgres.fresh_schema() as url:
        store = open_store(url)
        await store.open()
        try:
            memory = open_memory(store)
            assert isinstance(memory, PostgresMemory)
            yield memory
        finally:
            await store.close()


async def test_a_semantic_search_finds_pgvector_outside_the_stores_schema(
    memory: PostgresMemory,
) -> None:
    await put(memory, ("d",), "k", {}, vectors={"t": (1.0, 2.0)})
    assert memory.vector_schema is None  # looked up at the first semantic search

    assert await keys(memory, query_vector=(2.0, 1.0)) == ["k"]

    [(schema,)] = postgres.query(postgres.BASE_URL, FIND_PGVECTOR)
    assert memory.vector_schema == schema


async def test_the_ranking_is_pgvectors_cosine_distance() -> None:
    with postgres.fresh_schema() as url:
        store = open_store(url)
        await store.open()
        try:
            memory = open_memory(store)
            assert isinstance(memory, PostgresMemory)
            await put(memory, ("d",), "k", {"x": 1}, vectors={"t": (1.0, 2.0)})
            await keys(memory, query_vector=(1.0, 0.0))
            schema = memory.vector_schema
        finally:
            await store.close()
        assert schema is not None
        op = SearchItems(("d",), filter={"x": 1}, query_vector=(1.0, 0.0))
        sql, params = search_statement(SCOPE, op, NOW, schema)

        plan = "\n".join(
            row[0] for row in postgres.query(url, f"EXPLAIN (VERBOSE, COSTS OFF) {sql}", *params)
        )
        # Each stored vector, cast to pgvector's type, is compared by
        # pgvector's cosine distance with the query, cast once.
        vector = f"{schema}.vector"
        assert f"(v.embedding)::{vector} OPERATOR({schema}.<=>) '[1,0]'::{vector}" in plan, plan
        [(distance,)] = postgres.query(
            url,
            f"SELECT '[1,2]'::{schema}.vector OPERATOR({schema}.<=>) '[1,0]'::{schema}.vector",
        )
        assert distance == pytest.approx(1 - 1 / 5**0.5)


async def test_without_pgvector_only_a_search_by_vector_is_refused() -> None:
    """A database without the extension, reached by a role that may not
    create it (pgvector is not a trusted extension)."""
    postgres.require_postgres()
    name = f"cairn_novector_{uuid.uuid4().hex[:12]}"
    postgres.query(postgres.BASE_URL, f'CREATE ROLE "{name}" LOGIN')
    try:
        postgres.query(postgres.BASE_URL, f'CREATE DATABASE "{name}" OWNER "{name}"')
        try:
            parts = urlsplit(postgres.BASE_URL)
            url = parts._replace(netloc=f"{name}@{parts.hostname}:{parts.port or 5432}")
            store = open_store(url._replace(path=f"/{name}").geturl())
            await store.open()
            try:
                memory = open_memory(store)
                await put(memory, ("d",), "k", {"v": 1}, vectors={"t": (1.0, 0.0)})

                with pytest.raises(SemanticSearchUnavailable, match="CREATE EXTENSION vector"):
                    await keys(memory, query_vector=(1.0, 0.0))
                with pytest.raises(SemanticSearchUnavailable):
                    await keys(memory, query_vector=(1.0, 0.0))  # asked again: still absent
                assert await keys(memory) == ["k"]
                item = await get(memory, ("d",), "k")
                assert item is not None and item.value == {"v": 1}
            finally:
                await store.close()
        finally:
            postgres.query(postgres.BASE_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        postgres.query(postgres.BASE_URL, f'DROP ROLE IF EXISTS "{name}"')
