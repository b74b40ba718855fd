"""The long-term memory store's types: items as the store returns them, and
the operations of `Store.batch` / `abatch`, with LangGraph's names and fields.

Code written against LangGraph's `Item` and `SearchItem` reads these the
same way (`item.value`, `item.key`, `item.namespace`, `item.created_at`,
`item.updated_at`, `item.dict()`, `result.score`). The operations are
LangGraph's `GetOp`, `PutOp` (a `value` of None deletes), `SearchOp` and
`ListNamespacesOp`; `batch` also takes LangGraph's own op tuples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from google.protobuf import timestamp_pb2

from cairn._values import struct_to_json
from cairn.v1 import store_pb2

NamespacePath = tuple[str, ...]
"""A namespace path: the labels an item lives under, e.g. ("users", "u-42")."""


class NotProvided:
    """The default of `put(..., ttl=...)`: the store's default TTL applies."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_PROVIDED"


NOT_PROVIDED = NotProvided()


def from_timestamp(stamp: timestamp_pb2.Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Item:
    """One memory: a JSON object under `key` in the namespace path
    `namespace`, as LangGraph's `Item`.

        item = await store.aget(("users", "u-42"), "preferences")
        if item is not None:
            print(item.value["food"], item.updated_at)

    `expires_at` (not in LangGraph) is when the item expires, for an item
    put with a TTL; reads that refresh the TTL move it."""

    namespace: NamespacePath
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = field(default=None, kw_only=True)

    def __hash__(self) -> int:
        return hash((self.namespace, self.key))

    def dict(self) -> dict[str, Any]:
        """The item as JSON, as LangGraph's `Item.dict()`."""
        return {
            "namespace": list(self.namespace),
            "key": self.key,
            "value": self.value,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }

    @classmethod
    def _from_proto(cls, message: store_pb2.Item) -> Item:
        return cls(**_fields(message))


@dataclass(frozen=True, slots=True)
class SearchItem(Item):
    """An item found by `search`, with its similarity to the query (cosine,
    higher is nearer) when the search had a query and the item a vector;
    None otherwise, as LangGraph's `SearchItem`."""

    score: float | None = None

    def __hash__(self) -> int:
        return hash((self.namespace, self.key))

    def dict(self) -> dict[str, Any]:
        return {**Item.dict(self), "score": self.score}

    @classmethod
    def _from_proto(cls, message: store_pb2.SearchItem) -> SearchItem:  # type: ignore[override]
        score = message.score if message.HasField("score") else None
        return cls(**_fields(message.item), score=score)


def _fields(message: store_pb2.Item) -> dict[str, Any]:
    return {
        "namespace": tuple(message.namespace),
        "key": message.key,
        "value": struct_to_json(message.value, "value"),
        "created_at": from_timestamp(message.create_time),
        "updated_at": from_timestamp(message.update_time),
        "expires_at": from_timestamp(message.expire_time)
        if message.HasField("expire_time")
        else None,
    }


# --- operations (LangGraph's) ---------------------------------------------------------


class GetOp(NamedTuple):
    """Get the item at `namespace` and `key` (None when there is none)."""

    namespace: NamespacePath
    key: str
    refresh_ttl: bool = True


class SearchOp(NamedTuple):
    """Search under `namespace_prefix`: `filter` on top-level fields (values
    or {"$eq"|"$ne"|"$gt"|"$gte"|"$lt"|"$lte": value} or {"$in"|"$nin":
    [values]}), `query` ranked by similarity when the store has an index."""

    namespace_prefix: NamespacePath
    filter: dict[str, Any] | None = None
    limit: int = 10
    offset: int = 0
    query: str | None = None
    refresh_ttl: bool = True


class PutOp(NamedTuple):
    """Put `value` at `namespace` and `key`, or delete the item when `value`
    is None. `index`: None embeds the store's fields, False nothing, a list
    these fields. `ttl` in minutes (None: forever)."""

    namespace: NamespacePath
    key: str
    value: Mapping[str, Any] | None
    index: Literal[False] | list[str] | None = None  # type: ignore[assignment]  # as LangGraph's
    ttl: float | None = None


class MatchCondition(NamedTuple):
    """A namespace path pattern of `ListNamespacesOp` ("*" matches any label)."""

    match_type: Literal["prefix", "suffix"]
    path: tuple[str, ...]


class ListNamespacesOp(NamedTuple):
    """List the namespace paths that hold items, filtered by prefix and
    suffix conditions, cut to `max_depth` labels."""

    match_conditions: tuple[MatchCondition, ...] | None = None
    max_depth: int | None = None
    limit: int = 100
    offset: int = 0


Op = GetOp | SearchOp | PutOp | ListNamespacesOp
Result = Item | list[SearchItem] | list[NamespacePath] | None
