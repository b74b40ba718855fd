"""Schedules on SQLite: reads on the store's reader connection, writes as
jobs of its writer (one transaction, in the store's group commit)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from cairn_server.schedules.store import Backend, Row, Step
from cairn_server.store.sqlite import SqliteStore


class SqliteBackend(Backend):
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def read(self, sql: str, params: tuple[object, ...]) -> list[Row]:
        return await self._store.call_reader(lambda raw: raw.execute(sql, params).fetchall())

    async def write(self, steps: Sequence[Step]) -> list[list[Row]]:
        def apply(raw: sqlite3.Connection) -> list[list[Row]]:
            results: list[list[Row]] = []
            for step in steps:
                skip = step.guarded and not (results and results[-1])
                results.append([] if skip else raw.execute(step.sql, step.params).fetchall())
            return results

        return await self._store.call_writer(apply)
