"""The long-term memory store (StoreService): LangGraph's BaseStore items, in
the database of the server's store, behind one interface.

`open_memory(store)` picks the backend for the store's type; the backend
uses the store's connections (and its group commit), so it is open exactly
while the store is. Example::

    memory = open_memory(store)
    await memory.batch("default", [PutItem(("users", "u1"), "prefs", {"tone": "dry"})], now=now)
"""

from __future__ import annotations

from cairn_server.memory.base import (
    DeleteItem,
    GetItem,
    ListNamespaces,
    MemoryItem,
    MemoryStore,
    Operation,
    Path,
    PutItem,
    Result,
    ScoredItem,
    SearchItems,
    SemanticSearchUnavailable,
    Vector,
)
from cairn_server.store.base import Store


def open_memory(store: Store) -> MemoryStore:
    """The memory store kept in `store`'s database (a SqliteStore or a
    PostgresStore); nothing to open or close besides the store."""
    from cairn_server.store.postgres import PostgresStore
    from cairn_server.store.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        from cairn_server.memory.sqlite import SqliteMemory

        return SqliteMemory(store)
    if isinstance(store, PostgresStore):
        from cairn_server.memory.postgres import PostgresMemory

        return PostgresMemory(store)
    raise TypeError(f"no memory store for a {type(store).__name__}")


__all__ = [
    "DeleteItem",
    "GetItem",
    "ListNamespaces",
    "MemoryItem",
    "MemoryStore",
    "Operation",
    "Path",
    "PutItem",
    "Result",
    "ScoredItem",
    "SearchItems",
    "SemanticSearchUnavailable",
    "Vector",
    "open_memory",
]
