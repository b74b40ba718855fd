"""Schedules on Postgres: reads on a pooled connection, writes as jobs of
the store's writer (one transaction, in its group commit). A claim on a row
that another replica's claim holds skips it (FOR UPDATE SKIP LOCKED): one
of them moves the due time, the other changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cairn_server.schedules.store import Backend, Row, Step
from cairn_server.store._postgres_sql import numbered
from cairn_server.store.postgres import PostgresStore


class PostgresBackend(Backend):
    lock = " FOR UPDATE SKIP LOCKED"

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def read(self, sql: str, params: tuple[object, ...]) -> list[Row]:
        async def fetch(conn: Any) -> list[Row]:
            return list(await conn.fetch(numbered(sql), *params))

        return await self._store.call_reader(fetch)

    async def write(self, steps: Sequence[Step]) -> list[list[Row]]:
        async def apply(conn: Any) -> list[list[Row]]:
            results: list[list[Row]] = []
            for step in steps:
                skip = step.guarded and not (results and results[-1])
                rows = [] if skip else list(await conn.fetch(numbered(step.sql), *step.params))
                results.append(rows)
            return results

        return await self._store.call_writer(apply)
