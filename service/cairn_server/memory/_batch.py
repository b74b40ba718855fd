"""A batch on an SQL backend: its reads on one snapshot, then its writes.

`SqlMemory.batch` splits the operations: every get, search and
list_namespaces runs first, on one snapshot of the committed state (so no
read sees a write of its own batch); then one write job applies, in one
transaction, the refreshes those reads owe (items read with refresh_ttl that
have a ttl) and the puts and deletes in order, so that of several writes to
one item the last wins. A batch that neither writes nor refreshes never
reaches the writer. Backends supply the two halves.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence

from cairn_server.memory import _paths
from cairn_server.memory.base import (
    DeleteItem,
    GetItem,
    ListNamespaces,
    MemoryItem,
    MemoryStore,
    Operation,
    PutItem,
    Result,
    ScoredItem,
    SearchItems,
)

Read = GetItem | SearchItems | ListNamespaces
Write = PutItem | DeleteItem
ItemKey = tuple[str, str]
"""An item's stored path and key."""


class SqlMemory(MemoryStore):
    async def batch(
        self, scope: str, operations: Sequence[Operation], *, now: float
    ) -> list[Result]:
        results: list[Result] = [None] * len(operations)
        reads = [(i, op) for i, op in enumerate(operations) if isinstance(op, Read)]
        writes = [(i, op) for i, op in enumerate(operations) if isinstance(op, Write)]
        if reads:
            found = await self._read(scope, [op for _, op in reads], now)
            for (i, _), result in zip(reads, found, strict=True):
                results[i] = result
        refresh = _to_refresh(reads, results)
        if writes or refresh:
            written = await self._write(scope, sorted(refresh), [op for _, op in writes], now)
            for (i, _), result in zip(writes, written, strict=True):
                results[i] = result
            for i, op in reads:
                if _refreshes(op):
                    results[i] = _refreshed(results[i], now)
        return results

    @abc.abstractmethod
    async def _read(self, scope: str, ops: Sequence[Read], now: float) -> list[Result]:
        """The results of `ops`, all read on one snapshot."""

    @abc.abstractmethod
    async def _write(
        self, scope: str, refresh: Sequence[ItemKey], ops: Sequence[Write], now: float
    ) -> list[Result]:
        """In one transaction: move the expiry of the `refresh` items that are
        live and have a ttl to now + ttl, then apply `ops` in order; their
        results (the item stored by a put, whether a delete found one)."""


def _refreshes(op: Read) -> bool:
    return isinstance(op, GetItem | SearchItems) and op.refresh_ttl


def _to_refresh(reads: Sequence[tuple[int, Read]], results: list[Result]) -> set[ItemKey]:
    keys: set[ItemKey] = set()
    for i, op in reads:
        if not _refreshes(op):
            continue
        for item in _items(results[i]):
            if item.ttl is not None:
                keys.add((_paths.encode(item.namespace), item.key))
    return keys


def _items(result: Result) -> list[MemoryItem]:
    if isinstance(result, MemoryItem):
        return [result]
    if isinstance(result, list):
        return [found.item for found in result if isinstance(found, ScoredItem)]
    return []


def _refreshed(result: Result, now: float) -> Result:
    """A read's result as the refresh left it: items with a ttl expire at now + ttl."""

    def moved(item: MemoryItem) -> MemoryItem:
        if item.ttl is None:
            return item
        return dataclasses.replace(item, expires_at=now + item.ttl)

    if isinstance(result, MemoryItem):
        return moved(result)
    if isinstance(result, list):
        return [
            dataclasses.replace(found, item=moved(found.item))
            for found in result
            if isinstance(found, ScoredItem)
        ]
    return result
