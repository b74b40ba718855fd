"""Checkpoint, run and event storage behind one interface, picked by URL."""

from __future__ import annotations

from cairn_server.metrics import Metrics
from cairn_server.store._sqlite_sql import decode_token, encode_token
from cairn_server.store.base import (
    Lease,
    LeaseLost,
    PruneResult,
    Store,
    StoreError,
    StoreUnavailable,
    ThreadAlreadyExists,
    ThreadBusy,
    ThreadChanged,
    ThreadStatusChange,
    WriteBatch,
    WriteSet,
)


def open_store(url: str, *, metrics: Metrics | None = None) -> Store:
    """Build the store for `url`: `sqlite:///path.db` (relative) or
    `sqlite:////abs/path.db`, or `sqlite://:memory:` for tests; or
    `postgresql://user@host:5432/dbname` (also `postgres://`). Its commits
    are counted in `metrics` (a private registry when None)."""
    if url.startswith("sqlite:"):
        from cairn_server.store.sqlite import SqliteStore

        return SqliteStore.from_url(url, metrics=metrics)
    if url.startswith(("postgresql:", "postgres:")):
        from cairn_server.store.postgres import PostgresStore

        return PostgresStore.from_url(url, metrics=metrics)
    raise ValueError(
        f"unsupported store URL {url!r}; expected sqlite:///path.db or postgresql://host/dbname"
    )


__all__ = [
    "Lease",
    "LeaseLost",
    "PruneResult",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "ThreadAlreadyExists",
    "ThreadBusy",
    "ThreadChanged",
    "ThreadStatusChange",
    "WriteBatch",
    "WriteSet",
    "decode_token",
    "encode_token",
    "open_store",
]
