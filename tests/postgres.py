"""The Postgres server that tests use (127.0.0.1:5432, trust auth, database
`test`), and fresh schemas in it.

Each test gets its own schema (`?search_path=` in the store URL) and drops it
afterwards. When the server is unreachable a developer's run skips the
Postgres tests with the reason; CI (CI=true) fails them instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import pathlib
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

BASE_URL = os.environ.get("CAIRN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
START_HINT = (
    "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
)

T = TypeVar("T")


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on its own loop in a helper thread, so
    that sync helpers work inside async tests too."""

    async def main() -> T:
        return await make()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result(timeout=60)


async def _query(url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    schema = parse_qs(urlsplit(url).query).get("search_path", [None])[0]
    settings = {"search_path": schema} if schema else None
    base = url.split("?", 1)[0]
    conn = await asyncpg.connect(base, server_settings=settings, timeout=10)
    try:
        return [tuple(row) for row in await conn.fetch(sql, *params)]
    finally:
        await conn.close()


def query(url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Rows of one statement on the database (and schema) of a store URL."""
    return run_sync(lambda: _query(url, sql, *params))


async def _ensure_database() -> None:
    """Connect to the test database, creating it first when the server has
    none by that name (a fresh cluster has only `postgres`)."""
    try:
        await _query(BASE_URL, "SELECT 1")
    except asyncpg.InvalidCatalogNameError:
        parts = urlsplit(BASE_URL)
        name = parts.path.lstrip("/")
        admin = parts._replace(path="/postgres").geturl()
        with contextlib.suppress(asyncpg.DuplicateDatabaseError):
            await _query(admin, f'CREATE DATABASE "{name}"')
        await _query(BASE_URL, "SELECT 1")


@functools.cache
def _unreachable() -> str | None:
    try:
        run_sync(_ensure_database)
    except Exception as exc:  # any failure means: not usable here
        return f"{type(exc).__name__}: {exc}"
    return None


def require_postgres() -> None:
    """Skip (or, in CI, fail) the calling test when Postgres is unreachable."""
    problem = _unreachable()
    if problem is None:
        return
    message = f"Postgres is unreachable at {BASE_URL} ({problem}); {START_HINT}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def create_schema() -> str:
    """A new empty schema; returns the store URL that uses it."""
    require_postgres()
    name = f"cairn_test_{uuid.uuid4().hex[:16]}"
    query(BASE_URL, f'CREATE SCHEMA "{name}"')
    return f"{BASE_URL}?search_path={name}"


def drop_schema(url: str) -> None:
    name = parse_qs(urlsplit(url).query)["search_path"][0]
    query(BASE_URL, f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@contextlib.contextmanager
def fresh_schema() -> Iterator[str]:
    url = create_schema()
    try:
        yield url
    finally:
        drop_schema(url)


@contextlib.contextmanager
def store_url(backend: str, tmp_path: pathlib.Path) -> Iterator[str]:
    """A fresh store of `backend` ("sqlite": a file in `tmp_path`,
    "postgres": a new schema, dropped afterwards)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'cairn.db'}"
    else:
        with fresh_schema() as url:
            yield url


def restart_server(down_for: float) -> None:
    """Stop the local Postgres cluster (`pg_ctlcluster`), keep it down for
    `down_for` seconds, start it and wait until it accepts connections again.
    Every connection to it is lost."""
    (version,) = [p.name for p in pathlib.Path("/etc/postgresql").iterdir()]

    def cluster(action: str) -> None:
        command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action]
        subprocess.run(command, check=True, timeout=120)

    cluster("stop")
    try:
        time.sleep(down_for)  # an outage of this length, not a wait for an event
    finally:
        cluster("start")
    subprocess.run(["pg_isready", "-q", "-t", "60", "-h", "127.0.0.1", "-p", "5432"], check=True)
