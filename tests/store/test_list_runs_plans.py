"""The query plans of ListRuns without a thread (migration 0010), on each
backend: a page of a namespace's runs, or of those that wait, is read
through an index in run order, never by scanning or sorting every run of
every namespace. SQLite is checked with and without statistics (it gathers
none unless told to ANALYZE; with them, a join through threads_namespace_idx
turned into a scan of every run), Postgres with them (autovacuum gathers
them)."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from cairn_server import namespaces
from cairn_server.domain import RunState
from cairn_server.store import Store, WriteBatch
from tests import postgres
from tests.store.test_conformance import make_run, waits_on

BIG, SMALL = namespaces.DEFAULT, "small"


async def fill(store: Store) -> None:
    """3,000 runs on 300 threads of BIG (a few wait), 3 on SMALL (one waits)."""
    runs = [
        make_run(
            namespaces.scoped(BIG, f"t{i % 300}"),
            state=RunState.RUNNING if i % 1000 == 0 else RunState.SUCCEEDED,
            waiting=waits_on("fetch") if i % 1000 == 0 else [],
        )
        for i in range(3000)
    ]
    runs += [
        make_run(namespaces.scoped(SMALL, f"t{i}"), waiting=waits_on("fetch") if i else [])
        for i in range(3)
    ]
    for start in range(0, len(runs), 500):
        await store.commit(WriteBatch(runs=runs[start : start + 500]))


def analyze(url: str) -> None:
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("ANALYZE")
    else:
        postgres.query(url, "ANALYZE")


def plan(url: str, sql: str, params: tuple[Any, ...]) -> str:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
        return "\n".join(str(row[3]) for row in rows)
    return "\n".join(str(row[0]) for row in postgres.query(url, f"EXPLAIN {sql}", *params))


async def list_runs_plan(
    store: Store, url: str, monkeypatch: pytest.MonkeyPatch, **filters: Any
) -> str:
    """The plan of the query that list_runs(None, ...) sends."""
    sent: list[tuple[str, tuple[Any, ...]]] = []
    fetch = store._fetch  # type: ignore[attr-defined]

    async def recording(sql: str, *params: Any) -> Any:
        # SQLite's _fetch takes a tuple of parameters, Postgres's them one by one.
        sent.append((sql, params[0] if url.startswith("sqlite") else params))
        return await fetch(sql, *params)

    with monkeypatch.context() as patched:
        patched.setattr(store, "_fetch", recording)
        await store.list_runs(None, limit=50, **filters)
    ((sql, params),) = sent
    return plan(url, sql, params)


@pytest.mark.parametrize("statistics", [False, True], ids=["fresh", "analyzed"])
async def test_a_namespace_wide_page_reads_an_index_in_run_order(
    store: Store,
    store_url: str,
    monkeypatch: pytest.MonkeyPatch,
    statistics: bool,
) -> None:
    if not statistics and not store_url.startswith("sqlite"):
        pytest.skip("Postgres's autovacuum gathers statistics by itself as runs accumulate")
    await fill(store)
    if statistics:
        analyze(store_url)

    plans = {
        name: await list_runs_plan(store, store_url, monkeypatch, namespace=ns, waiting=waiting)
        for name, ns, waiting in (
            ("small", SMALL, False),
            ("big", BIG, False),
            ("small waiting", SMALL, True),
            ("big waiting", BIG, True),
        )
    }
    for name, text in plans.items():
        # SQLite's SCAN is a full scan, through an index or not.
        assert "SCAN runs" not in text and "Seq Scan" not in text, (name, text)
    for name in ("big", "big waiting"):
        # In run order: the page ends after its rows; sorting SMALL's few is fine.
        assert "TEMP B-TREE" not in plans[name] and "Sort" not in plans[name], plans[name]
    assert "runs_namespace_idx" in plans["small"], plans["small"]
    assert "runs_waiting_idx" in plans["small waiting"], plans["small waiting"]
    assert "runs_waiting_idx" in plans["big waiting"], plans["big waiting"]
