"""A SQLite database written before migration 0005 keeps its LangGraph
checkpoints: they move from the lg_* tables into the native ones."""

from __future__ import annotations

import json
import pathlib
import sqlite3

from cairn_server.store import open_store
from cairn_server.store._sqlite_sql import load_migrations


def write_version_4_database(path: pathlib.Path) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute(
            "CREATE TABLE schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        for migration in load_migrations("sqlite")[:4]:
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, 0)",
                (migration.version, migration.name),
            )
        conn.execute(
            "INSERT INTO lg_checkpoints VALUES ('t', '', 'c1', NULL, 'msgpack', x'80', ?, ?, 'r1')",
            (json.dumps({"step": -1, "run_id": "r1"}), json.dumps({"topic": "v1"})),
        )
        conn.execute(
            "INSERT INTO lg_blobs VALUES ('t', '', 'topic', 'v1', 'json', x'226361747322')"
        )
        conn.execute(
            "INSERT INTO lg_writes VALUES ('t', '', 'c1', 'task', 0, 'path', 'topic', 'json',"
            " x'22646f677322')"
        )
        conn.commit()
    finally:
        conn.close()


async def test_langgraph_rows_move_into_the_native_tables(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "old.db"
    write_version_4_database(path)
    store = open_store(f"sqlite:///{path}")
    await store.open()
    try:
        found = await store.lg_get("t", "", None)
        assert found is not None
        assert (found.checkpoint_id, found.type, found.data) == ("c1", "msgpack", b"\x80")
        assert [(b.channel, b.version, b.data) for b in found.blobs] == [("topic", "v1", b'"cats"')]
        assert [(w.task_id, w.channel, w.data) for w in found.writes] == [
            ("task", "topic", b'"dogs"')
        ]
        thread = await store.get_thread("t")
        assert thread is not None and thread.status == "idle"
        native = await store.get_checkpoint("t")
        assert native is not None and native.channel_values == {"topic": "cats"}
        await store.lg_delete_for_runs(["r1"])
        assert await store.lg_get("t", "", None) is None
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert not {"lg_checkpoints", "lg_blobs", "lg_writes"} & tables
