"""Backends of the store conformance suite.

A backend hands out a fresh, empty store URL per test (and disposes of it
afterwards) and answers the few raw questions the Store interface deliberately
does not (row counts, the migrations table). Supporting another backend means
adding one Backend subclass to BACKENDS; every conformance test then runs
against it. Postgres tests skip with the reason when the server is
unreachable, and fail instead in CI (see tests/postgres.py).
"""

from __future__ import annotations

import abc
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cairn_server.store import Store, open_store
from tests import postgres


class Backend(abc.ABC):
    @abc.abstractmethod
    def fresh_url(self, tmp_path: Path) -> str:
        """The URL of a new, empty database."""

    def dispose(self, url: str) -> None:  # noqa: B027 - most backends need nothing
        """Drop what fresh_url made; called once the test is done with it."""

    @abc.abstractmethod
    def count_rows(self, url: str, table: str, **equal: object) -> int:
        """Rows of `table` whose columns equal the given values."""

    @abc.abstractmethod
    def migrations(self, url: str) -> list[tuple[int, str, float]]:
        """(version, name, applied_at) rows of schema_migrations, by version."""


class SqliteBackend(Backend):
    def fresh_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'cairn.db'}"  # tmp_path is absolute: sqlite:////...

    @staticmethod
    def _query(url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return conn.execute(sql, params).fetchall()

    def count_rows(self, url: str, table: str, **equal: object) -> int:
        where = " AND ".join(f"{column} = ?" for column in equal) or "1"
        rows = self._query(
            url, f"SELECT COUNT(*) FROM {table} WHERE {where}", tuple(equal.values())
        )
        return int(rows[0][0])

    def migrations(self, url: str) -> list[tuple[int, str, float]]:
        rows = self._query(
            url, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"
        )
        return [(int(v), str(n), float(a)) for v, n, a in rows]


class PostgresBackend(Backend):
    """One schema per test in the `test` database, dropped afterwards."""

    def fresh_url(self, tmp_path: Path) -> str:
        return postgres.create_schema()

    def dispose(self, url: str) -> None:
        postgres.drop_schema(url)

    def count_rows(self, url: str, table: str, **equal: object) -> int:
        where = " AND ".join(f"{column} = ${i}" for i, column in enumerate(equal, 1)) or "TRUE"
        rows = postgres.query(url, f"SELECT COUNT(*) FROM {table} WHERE {where}", *equal.values())
        return int(rows[0][0])

    def migrations(self, url: str) -> list[tuple[int, str, float]]:
        rows = postgres.query(
            url, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"
        )
        return [(int(v), str(n), float(a)) for v, n, a in rows]


BACKENDS: dict[str, Backend] = {"sqlite": SqliteBackend(), "postgres": PostgresBackend()}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    return BACKENDS[request.param]


@pytest.fixture
def store_url(backend: Backend, tmp_path: Path) -> Iterator[str]:
    url = backend.fresh_url(tmp_path)
    try:
        yield url
    finally:
        backend.dispose(url)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    store = open_store(store_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
