"""The long-term memory store's interface and types (StoreService, DESIGN 8.2).

Items are JSON objects under a key in a path of labels (LangGraph's store
namespace), inside one Cairn namespace (`scope`: whose store it is). Every
method takes the scope first and never reaches another scope's items, and
takes `now` (seconds since the epoch) from the caller's clock, so expiry is
tested without sleeping.

Reads of a `batch` see the store as it was before the batch; its writes are
then applied in one transaction, in order.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field

from cairn_server.domain import Json

Path = tuple[str, ...]
"""A namespace path: the labels an item lives under."""


@dataclass(frozen=True, slots=True)
class Vector:
    """The embedding of one field of an item (computed by the caller)."""

    path: str
    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class MemoryItem:
    namespace: Path
    key: str
    value: dict[str, Json]
    created_at: float
    updated_at: float
    expires_at: float | None = None
    ttl: float | None = None
    """Seconds the item lives after a put or a refreshing read (None: forever)."""


@dataclass(frozen=True, slots=True)
class ScoredItem:
    item: MemoryItem
    score: float | None = None
    """Cosine similarity to the query vector; None without a query vector or
    for an item with no vector of the query's dimension."""


@dataclass(frozen=True, slots=True)
class GetItem:
    namespace: Path
    key: str
    refresh_ttl: bool = True


@dataclass(frozen=True, slots=True)
class PutItem:
    namespace: Path
    key: str
    value: dict[str, Json]
    vectors: tuple[Vector, ...] = ()
    ttl: float | None = None


@dataclass(frozen=True, slots=True)
class DeleteItem:
    namespace: Path
    key: str


@dataclass(frozen=True, slots=True)
class SearchItems:
    namespace_prefix: Path = ()
    filter: dict[str, Json] = field(default_factory=dict)
    """LangGraph's filter: top-level field -> value or {"$op": value}."""
    limit: int = 10
    offset: int = 0
    query_vector: tuple[float, ...] = ()
    refresh_ttl: bool = True


@dataclass(frozen=True, slots=True)
class ListNamespaces:
    prefix: Path = ()
    """Labels the path starts with; "*" matches any label."""
    suffix: Path = ()
    """Labels the path ends with; "*" matches any label."""
    max_depth: int | None = None
    limit: int = 100
    offset: int = 0


Operation = GetItem | PutItem | DeleteItem | SearchItems | ListNamespaces

Result = MemoryItem | None | bool | list[ScoredItem] | list[Path]
"""Per operation: GetItem -> MemoryItem | None; PutItem -> MemoryItem (as
stored); DeleteItem -> bool (whether it existed); SearchItems ->
list[ScoredItem]; ListNamespaces -> list[Path]."""


class SemanticSearchUnavailable(Exception):
    """The backend cannot rank by vectors (Postgres without pgvector)."""


class MemoryStore(abc.ABC):
    """One backend of the memory store. Validation (labels, sizes, limits)
    is the caller's: backends get well-formed operations."""

    @abc.abstractmethod
    async def batch(
        self, scope: str, operations: Sequence[Operation], *, now: float
    ) -> list[Result]:
        """Run `operations`: every read sees the state before the batch,
        then every write is applied in one transaction, in order. Returns
        one result per operation."""

    @abc.abstractmethod
    async def delete_expired(self, *, now: float, limit: int) -> int:
        """Delete up to `limit` items (of every scope) expired at `now`;
        returns how many were deleted."""
