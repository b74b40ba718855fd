"""The memory store on SQLite, on the connections of the SQLite store.

Reads run on the store's reader connection, inside one read transaction per
batch (one snapshot); writes are jobs of the store's writer, so they share
its group commit and never need a connection of their own.

Semantic search is exact: vectors are kept as little-endian float32 with
their norm, a function registered on the reader connection scores each
vector of the query's dimension under the prefix (cosine similarity), and
SQLite orders the items by their best score.
"""

from __future__ import annotations

import contextlib
import math
import operator
import sqlite3
import sys
from array import array
from collections.abc import Callable, Sequence

from cairn_server.memory import _paths, _sql
from cairn_server.memory._batch import ItemKey, Read, SqlMemory, Write
from cairn_server.memory.base import GetItem, PutItem, Result, ScoredItem, SearchItems
from cairn_server.store.sqlite import SqliteStore

_SIMILARITY = "cairn_memory_similarity"

_INSERT_VECTOR = (
    "INSERT INTO memory_vectors (scope, path, key, field, dims, norm, embedding)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)

_DELETE_EXPIRED = _sql.DELETE_EXPIRED.format(lock="")


class SqliteMemory(SqlMemory):
    """The memory store in the database of a SqliteStore (which opens and
    closes the connections).

    Example::

        memory = SqliteMemory(store)
        [item] = await memory.batch("default", [PutItem(("notes",), "a", {"x": 1})], now=now)
    """

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def _read(self, scope: str, ops: Sequence[Read], now: float) -> list[Result]:
        return await self._store.call_reader(lambda raw: _read_all(raw, scope, ops, now))

    async def _write(
        self, scope: str, refresh: Sequence[ItemKey], ops: Sequence[Write], now: float
    ) -> list[Result]:
        # Encoded before the job is queued: a value that is not JSON fails here.
        encoded = [_encode(scope, op, now) if isinstance(op, PutItem) else op for op in ops]
        rows = [(now, scope, path, key, now) for path, key in refresh]

        def apply(raw: sqlite3.Connection) -> list[Result]:
            raw.executemany(_sql.REFRESH, rows)
            return [_apply(raw, scope, op, now) for op in encoded]

        return await self._store.call_writer(apply)

    async def delete_expired(self, *, now: float, limit: int) -> int:
        def apply(raw: sqlite3.Connection) -> int:
            return raw.execute(_DELETE_EXPIRED, (now, limit)).rowcount

        return await self._store.call_writer(apply)


# --- reads --------------------------------------------------------------------


def _read_all(raw: sqlite3.Connection, scope: str, ops: Sequence[Read], now: float) -> list[Result]:
    raw.execute("BEGIN")  # one snapshot for every read of the batch
    try:
        results = [_read_one(raw, scope, op, now) for op in ops]
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            raw.execute("ROLLBACK")
        raise
    raw.execute("COMMIT")
    return results


def _read_one(raw: sqlite3.Connection, scope: str, op: Read, now: float) -> Result:
    if isinstance(op, GetItem):
        params = (scope, _paths.encode(op.namespace), op.key, now)
        rows = raw.execute(_sql.GET, params).fetchall()
        return _sql.item_from_row(rows[0]) if rows else None
    if isinstance(op, SearchItems):
        return _search(raw, scope, op, now)
    query = _sql.namespaces(scope, op, now)
    paths = [_paths.decode(row[0]) for row in raw.execute(query.sql, query.params)]
    return _paths.select(paths, op)


def _search(raw: sqlite3.Connection, scope: str, op: SearchItems, now: float) -> list[ScoredItem]:
    ranking = None
    if op.query_vector:
        raw.create_function(_SIMILARITY, 2, similarity_to(op.query_vector))
        ranking = _sql.Ranking(f"{_SIMILARITY}(v.embedding, v.norm)", (), len(op.query_vector))
    query = _sql.search(scope, op, now, ranking)
    page = _sql.Page(op)
    # Closed when the page is full: an unfinished statement would keep the
    # function registered above from being replaced by the next search.
    with contextlib.closing(raw.execute(query.sql, query.params)) as rows:
        for row in rows:
            if page.offer(row):
                break
    return page.items


# --- writes -------------------------------------------------------------------


def _encode(scope: str, op: PutItem, now: float) -> _sql.EncodedPut:
    params = _sql.put_params(scope, op, now)
    vectors = []
    for vector in op.vectors:
        blob = pack(vector.values)
        vectors.append((*params[:3], vector.path, len(vector.values), norm(blob), blob))
    return _sql.EncodedPut(op, params, vectors)


def _apply(raw: sqlite3.Connection, scope: str, op: _sql.EncodedPut | Write, now: float) -> Result:
    if isinstance(op, _sql.EncodedPut):
        [(created_at,)] = raw.execute(_sql.UPSERT, op.params).fetchall()
        raw.execute(_sql.DELETE_VECTORS, op.item_key)
        raw.executemany(_INSERT_VECTOR, op.vectors)
        return _sql.stored(op.op, created_at, now)
    assert not isinstance(op, PutItem)  # puts arrive encoded
    params = (scope, _paths.encode(op.namespace), op.key)
    return _sql.deleted(raw.execute(_sql.DELETE_ITEM, params).fetchall(), now)


# --- vectors ------------------------------------------------------------------


def pack(values: Sequence[float]) -> bytes:
    """A vector as little-endian float32."""
    floats = array("f", values)
    if sys.byteorder == "big":
        floats.byteswap()
    return floats.tobytes()


def unpack(blob: bytes) -> array[float]:
    floats = array("f")
    floats.frombytes(blob)
    if sys.byteorder == "big":
        floats.byteswap()
    return floats


def norm(blob: bytes) -> float:
    """The Euclidean norm of a packed vector (of its float32 values, as stored)."""
    return math.hypot(*unpack(blob))


def similarity_to(query: Sequence[float]) -> Callable[[bytes, float], float]:
    """The cosine similarity of `query` to a packed vector of its length with
    the given norm; 0 when either is the zero vector (as LangGraph scores it)."""
    values = tuple(query)
    query_norm = math.hypot(*values)

    def similarity(blob: bytes, vector_norm: float) -> float:
        if not query_norm or not vector_norm:
            return 0.0
        dot: float = sum(map(operator.mul, values, unpack(blob)))
        return max(-1.0, min(1.0, dot / (query_norm * vector_norm)))

    return similarity
