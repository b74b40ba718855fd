"""The memory store on Postgres, on the connections of the Postgres store.

Reads run on a pooled connection in one read-only repeatable-read
transaction per batch (one snapshot); writes are jobs of the store's writer,
so they share its group commit.

Semantic search is exact and ranked by pgvector: vectors are stored as
real[] (migration 0011 says why) and cast, when searched, to the `vector`
type of the schema where the extension lives, compared with its cosine
distance operator `<=>`. The extension is looked up at the first search with
a query vector, and created (in schema public) when missing and the
database lets us; without it such searches raise SemanticSearchUnavailable
and everything else works.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from cairn_server.memory import _paths, _sql
from cairn_server.memory._batch import ItemKey, Read, SqlMemory, Write
from cairn_server.memory.base import (
    GetItem,
    PutItem,
    Result,
    ScoredItem,
    SearchItems,
    SemanticSearchUnavailable,
)
from cairn_server.store._postgres_sql import numbered
from cairn_server.store.base import StoreError
from cairn_server.store.postgres import PostgresStore

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[Any] | PoolConnectionProxy[Any]
else:
    Connection = Any

log = logging.getLogger(__name__)

FIND_PGVECTOR = (
    "SELECT n.nspname FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace"
    " WHERE e.extname = 'vector'"
)
CREATE_PGVECTOR = "CREATE EXTENSION IF NOT EXISTS vector SCHEMA public"

_GET = numbered(_sql.GET)
_REFRESH = numbered(_sql.REFRESH)
_UPSERT = numbered(_sql.UPSERT)
_DELETE_VECTORS = numbered(_sql.DELETE_VECTORS)
_DELETE_ITEM = numbered(_sql.DELETE_ITEM)
_DELETE_EXPIRED = numbered(_sql.DELETE_EXPIRED.format(lock=" FOR UPDATE SKIP LOCKED"))
_INSERT_VECTOR = numbered(
    "INSERT INTO memory_vectors (scope, path, key, field, dims, embedding)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def score_sql(schema: str) -> str:
    """The cosine similarity of `v.embedding` to the query (the one
    parameter) through pgvector installed in `schema`. pgvector's distance
    is NaN for a zero vector, which scores 0 as on SQLite."""
    s = _quote(schema)
    distance = f"v.embedding::{s}.vector OPERATOR({s}.<=>) ?::real[]::{s}.vector"
    return f"COALESCE(1 - NULLIF({distance}, 'NaN'), 0)"


def search_statement(
    scope: str, op: SearchItems, now: float, schema: str | None
) -> tuple[str, list[object]]:
    """The statement and parameters of a search; `schema` is pgvector's,
    needed when the search has a query vector."""
    ranking = None
    if op.query_vector:
        assert schema is not None
        params: tuple[object, ...] = (list(op.query_vector),)
        ranking = _sql.Ranking(score_sql(schema), params, len(op.query_vector))
    query = _sql.search(scope, op, now, ranking)
    return numbered(query.sql), query.params


class PostgresMemory(SqlMemory):
    """The memory store in the database of a PostgresStore (which opens and
    closes the pool).

    Example::

        memory = PostgresMemory(store)
        [item] = await memory.batch("default", [PutItem(("notes",), "a", {"x": 1})], now=now)
    """

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._vector_schema: str | None = None
        self._tried_create = False
        self._finding = asyncio.Lock()

    @property
    def vector_schema(self) -> str | None:
        """The schema of pgvector, once a search found it (None before, or
        without it)."""
        return self._vector_schema

    async def _pgvector(self) -> str:
        async with self._finding:
            if self._vector_schema is None:
                self._vector_schema = await self._find_pgvector()
            if self._vector_schema is None and not self._tried_create:
                self._tried_create = True
                try:
                    await self._store.call_writer(lambda conn: conn.execute(CREATE_PGVECTOR))
                except StoreError as error:
                    log.warning("pgvector is not installed and cannot be created: %s", error)
                self._vector_schema = await self._find_pgvector()
                if self._vector_schema is not None:
                    log.info("created pgvector in schema %s", self._vector_schema)
        if self._vector_schema is None:
            raise SemanticSearchUnavailable(
                "pgvector is not installed in this database; a superuser can install it"
                " with CREATE EXTENSION vector"
            )
        return self._vector_schema

    async def _find_pgvector(self) -> str | None:
        async def find(conn: Connection) -> str | None:
            schema = await conn.fetchval(FIND_PGVECTOR)
            return None if schema is None else str(schema)

        return await self._store.call_reader(find)

    async def _read(self, scope: str, ops: Sequence[Read], now: float) -> list[Result]:
        semantic = any(isinstance(op, SearchItems) and op.query_vector for op in ops)
        schema = await self._pgvector() if semantic else None

        async def read(conn: Connection) -> list[Result]:
            return [await _read_one(conn, scope, op, now, schema) for op in ops]

        return await self._store.call_reader(read)

    async def _write(
        self, scope: str, refresh: Sequence[ItemKey], ops: Sequence[Write], now: float
    ) -> list[Result]:
        # Encoded before the job is queued: a value that is not JSON fails here.
        encoded = [_encode(scope, op, now) if isinstance(op, PutItem) else op for op in ops]
        rows = [(now, scope, path, key, now) for path, key in refresh]

        async def apply(conn: Connection) -> list[Result]:
            if rows:
                await conn.executemany(_REFRESH, rows)
            return [await _apply(conn, scope, op, now) for op in encoded]

        return await self._store.call_writer(apply)

    async def delete_expired(self, *, now: float, limit: int) -> int:
        async def apply(conn: Connection) -> int:
            status = await conn.execute(_DELETE_EXPIRED, now, limit)
            return int(status.rsplit(" ", 1)[-1])  # "DELETE <count>"

        return await self._store.call_writer(apply)


# --- reads --------------------------------------------------------------------


async def _read_one(
    conn: Connection, scope: str, op: Read, now: float, schema: str | None
) -> Result:
    if isinstance(op, GetItem):
        row = await conn.fetchrow(_GET, scope, _paths.encode(op.namespace), op.key, now)
        return None if row is None else _sql.item_from_row(row)
    if isinstance(op, SearchItems):
        return await _search(conn, scope, op, now, schema)
    query = _sql.namespaces(scope, op, now)
    rows = await conn.fetch(numbered(query.sql), *query.params)
    return _paths.select([_paths.decode(row[0]) for row in rows], op)


async def _search(
    conn: Connection, scope: str, op: SearchItems, now: float, schema: str | None
) -> list[ScoredItem]:
    sql, params = search_statement(scope, op, now, schema)
    page = _sql.Page(op)
    # A cursor: with a filter, rows are read only until the page is full.
    prefetch = min(max(op.offset + op.limit, 100), 1000)
    async for row in conn.cursor(sql, *params, prefetch=prefetch):
        if page.offer(row):
            break
    return page.items


# --- writes -------------------------------------------------------------------


def _encode(scope: str, op: PutItem, now: float) -> _sql.EncodedPut:
    params = _sql.put_params(scope, op, now)
    vectors = [
        (*params[:3], vector.path, len(vector.values), list(vector.values)) for vector in op.vectors
    ]
    return _sql.EncodedPut(op, params, vectors)


async def _apply(conn: Connection, scope: str, op: _sql.EncodedPut | Write, now: float) -> Result:
    if isinstance(op, _sql.EncodedPut):
        created_at = await conn.fetchval(_UPSERT, *op.params)
        await conn.execute(_DELETE_VECTORS, *op.item_key)
        if op.vectors:
            await conn.executemany(_INSERT_VECTOR, op.vectors)
        return _sql.stored(op.op, created_at, now)
    assert not isinstance(op, PutItem)  # puts arrive encoded
    rows = await conn.fetch(_DELETE_ITEM, scope, _paths.encode(op.namespace), op.key)
    return _sql.deleted(list(rows), now)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
