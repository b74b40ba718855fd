"""The memory store's SQL and row codecs, shared by SQLite and Postgres.

Statements use `?` placeholders (Postgres numbers them) over the tables of
migration 0011; only the vectors differ between the dialects, and live in
each backend. A search is one ordered query: its rows stream through a Page,
which applies the filter (filters.py) and the offset and stops at the limit,
so a search never reads past the page it returns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from cairn_server.domain import Json
from cairn_server.memory import _paths, filters
from cairn_server.memory.base import ListNamespaces, MemoryItem, PutItem, ScoredItem, SearchItems

ITEM_COLUMNS = "i.path, i.key, i.value, i.created_at, i.updated_at, i.expires_at, i.ttl"
_VISIBLE = "(i.expires_at IS NULL OR i.expires_at > ?)"
"""An item not expired at `now` (expired items wait for the sweep, unseen)."""

GET = (
    f"SELECT {ITEM_COLUMNS} FROM memory_items AS i"
    f" WHERE i.scope = ? AND i.path = ? AND i.key = ? AND {_VISIBLE}"
)
"""(scope, path, key, now)"""

REFRESH = (
    "UPDATE memory_items SET expires_at = ? + ttl"
    " WHERE scope = ? AND path = ? AND key = ? AND ttl IS NOT NULL AND expires_at > ?"
)
"""(now, scope, path, key, now): a read moves the expiry of a live item."""

UPSERT = (
    "INSERT INTO memory_items AS i"
    " (scope, path, key, value, created_at, updated_at, expires_at, ttl)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (scope, path, key) DO UPDATE SET value = excluded.value,"
    # An expired item the sweep has not deleted yet is replaced by a new one.
    " created_at = CASE WHEN i.expires_at <= excluded.updated_at"
    " THEN excluded.created_at ELSE i.created_at END,"
    " updated_at = excluded.updated_at, expires_at = excluded.expires_at, ttl = excluded.ttl"
    " RETURNING created_at"
)
"""put_params(...): the item's created_at as stored."""

DELETE_VECTORS = "DELETE FROM memory_vectors WHERE scope = ? AND path = ? AND key = ?"

DELETE_ITEM = (
    "DELETE FROM memory_items WHERE scope = ? AND path = ? AND key = ? RETURNING expires_at"
)
"""(scope, path, key); the vectors go with it (ON DELETE CASCADE)."""

DELETE_EXPIRED = (
    "DELETE FROM memory_items WHERE (scope, path, key) IN ("
    "SELECT scope, path, key FROM memory_items WHERE expires_at <= ?"
    " ORDER BY expires_at LIMIT ?{lock})"
)
"""(now, limit); `lock` is the dialect's row lock of the victims."""


class Row(Protocol):
    """A result row of either backend (a tuple, asyncpg.Record)."""

    def __getitem__(self, index: int, /) -> Any: ...


def dumps(value: Json) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def visible(expires_at: float | None, now: float) -> bool:
    return expires_at is None or expires_at > now


def put_params(scope: str, op: PutItem, now: float) -> tuple[object, ...]:
    """UPSERT's parameters; the value is encoded here, so that a value that
    is not JSON fails before anything is written."""
    expires_at = None if op.ttl is None else now + op.ttl
    value = dumps(op.value)
    return (scope, _paths.encode(op.namespace), op.key, value, now, now, expires_at, op.ttl)


def stored(op: PutItem, created_at: float, now: float) -> MemoryItem:
    """The item a put left."""
    expires_at = None if op.ttl is None else float(now + op.ttl)
    ttl = None if op.ttl is None else float(op.ttl)
    return MemoryItem(
        op.namespace, op.key, op.value, float(created_at), float(now), expires_at, ttl
    )


def item_from_row(row: Row) -> MemoryItem:
    """An item from the ITEM_COLUMNS of a row."""
    return MemoryItem(
        namespace=_paths.decode(row[0]),
        key=row[1],
        value=json.loads(row[2]),
        created_at=float(row[3]),
        updated_at=float(row[4]),
        expires_at=None if row[5] is None else float(row[5]),
        ttl=None if row[6] is None else float(row[6]),
    )


# --- search -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ranking:
    """How a backend scores a vector against the query: an SQL expression
    over `v` (a memory_vectors row) giving the cosine similarity."""

    score: str
    params: tuple[object, ...]
    dims: int


@dataclass(frozen=True, slots=True)
class Query:
    sql: str
    params: list[object] = field(default_factory=list)


def _pages_in_sql(op: SearchItems) -> bool:
    """Without a filter every row is a result: LIMIT and OFFSET do the paging."""
    return not op.filter


def search(scope: str, op: SearchItems, now: float, ranking: Ranking | None) -> Query:
    """The items under the prefix, in the order SearchItems returns them:
    with a ranking, by the best score of their vectors of its dimension,
    then those without one; newest update first among equals. The last
    column is the score (NULL when unscored)."""
    span = _paths.bounds(op.namespace_prefix)
    params: list[object] = []
    if ranking is None:
        sql = f"SELECT {ITEM_COLUMNS}, NULL FROM memory_items AS i"
        order = "i.updated_at DESC, i.path, i.key"
    else:
        # One look-up of the item's own vectors by primary key per item, so
        # the cost grows with the items under the prefix whatever the
        # planner believes about the tables' sizes (a join with a grouped
        # subquery went quadratic on Postgres tables not analyzed yet).
        sql = (
            f"SELECT {ITEM_COLUMNS}, (SELECT MAX({ranking.score}) FROM memory_vectors AS v"
            " WHERE v.scope = i.scope AND v.path = i.path AND v.key = i.key AND v.dims = ?)"
            " AS score FROM memory_items AS i"
        )
        params += [*ranking.params, ranking.dims]
        order = "score DESC NULLS LAST, i.updated_at DESC, i.path, i.key"
    sql += " WHERE i.scope = ?"
    params.append(scope)
    if span is not None:
        sql += " AND i.path >= ? AND i.path < ?"
        params += span
    sql += f" AND {_VISIBLE} ORDER BY {order}"
    params.append(now)
    if _pages_in_sql(op):
        sql += " LIMIT ? OFFSET ?"
        params += [op.limit, op.offset]
    return Query(sql, params)


class Page:
    """The results of a search, fed its query's rows in order."""

    def __init__(self, op: SearchItems) -> None:
        self._filter = op.filter
        self._skip = 0 if _pages_in_sql(op) else op.offset
        self._limit = op.limit
        self.items: list[ScoredItem] = []

    @property
    def full(self) -> bool:
        return len(self.items) >= self._limit

    def offer(self, row: Row) -> bool:
        """Take the row if it matches; True once the page is full."""
        if self.full:
            return True
        item = item_from_row(row)
        if filters.matches(item.value, self._filter):
            if self._skip:
                self._skip -= 1
            else:
                self.items.append(ScoredItem(item, None if row[7] is None else float(row[7])))
        return self.full


# --- namespaces ---------------------------------------------------------------


def namespaces(scope: str, op: ListNamespaces, now: float) -> Query:
    """The distinct paths of live items that may match `op` (narrowed by the
    prefix's labels before any wildcard); _paths.select picks the rest."""
    sql = "SELECT DISTINCT i.path FROM memory_items AS i WHERE i.scope = ?"
    params: list[object] = [scope]
    span = _paths.bounds(_paths.literal_head(op.prefix))
    if span is not None:
        sql += " AND i.path >= ? AND i.path < ?"
        params += span
    params.append(now)
    return Query(sql + f" AND {_VISIBLE}", params)


# --- writes -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EncodedPut:
    """A put ready for the writer: UPSERT's parameters and the rows of the
    backend's vector insert."""

    op: PutItem
    params: tuple[object, ...]
    vectors: list[tuple[object, ...]]

    @property
    def item_key(self) -> tuple[object, ...]:
        """(scope, path, key)"""
        return self.params[:3]


def deleted(rows: list[Row], now: float) -> bool:
    """DeleteItem's result from DELETE_ITEM's rows: whether a live item went."""
    return bool(rows) and visible(rows[0][0], now)
