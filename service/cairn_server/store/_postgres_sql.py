"""SQL text and batch encoding for the Postgres store.

The tables match SQLite's (see migrations/postgres), so rows decode with the
same `*_from_row` functions as there; what differs is the SQL dialect
(`$n` parameters, jsonb operators, arrays of ids) and the parameter types
asyncpg wants (booleans, floats, jsonb as text).
"""

from __future__ import annotations

import re

from cairn_server.domain import (
    Json,
    ThreadRecord,
    ThreadStatus,
)
from cairn_server.store._sqlite_sql import Params, dumps

# jsonb cannot hold the character U+0000: a "\u0000" escape preceded by an
# even number of backslashes (an odd number escapes the backslash itself).
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def jsonb(value: Json, what: str) -> str:
    """`value` as JSON text for a jsonb column; ValueError when Postgres
    could not store it."""
    return jsonb_text(dumps(value), what)


def jsonb_text(text: str, what: str) -> str:
    """JSON `text` for a jsonb column; ValueError when Postgres could not
    store it."""
    if _NUL_ESCAPE.search(text):
        raise ValueError(f"{what} cannot hold the character U+0000 in a Postgres store")
    return text


def metadata_filter(
    column: str, metadata: dict[str, Json] | None, first: int
) -> tuple[list[str], list[object]]:
    """Conditions matching rows whose jsonb `column` has each top-level key
    equal to the given value (jsonb equality: 1 equals 1.0, "1" does not).
    Parameters are numbered from `first`."""
    conditions: list[str] = []
    params: list[object] = []
    for key, value in (metadata or {}).items():
        n = first + len(params)
        conditions.append(f"{column} -> ${n}::text = ${n + 1}::jsonb")
        params.extend((key, jsonb(value, "a metadata filter")))
    return conditions, params


def numbered(sql: str) -> str:
    """A query written with `?` placeholders (shared with SQLite) as $1, $2, ..."""
    counter = iter(range(1, sql.count("?") + 1))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


# --- migrations ---------------------------------------------------------------

# One lock per schema, held by the transaction that applies migrations, so
# that of several replicas starting at once exactly one applies them.
MIGRATION_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtextextended('cairn.migrations.' || current_schema(), 0))"
)

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
)
"""

# --- threads ------------------------------------------------------------------

THREAD_COLUMNS = "thread_id, created_at, updated_at, metadata::text, status, request_id"
_THREAD_INSERT = """
INSERT INTO threads (thread_id, created_at, updated_at, metadata, status, request_id)
VALUES ($1, $2, $3, $4::jsonb, $5, $6)
"""

INSERT_THREAD = f"{_THREAD_INSERT} ON CONFLICT (thread_id) DO NOTHING"

# $1 is an array of thread ids.
DELETE_THREADS = [
    "DELETE FROM run_events WHERE run_id IN"
    " (SELECT run_id FROM runs WHERE thread_id = ANY($1::text[]))",
    "DELETE FROM runs WHERE thread_id = ANY($1::text[])",
    "DELETE FROM checkpoint_writes WHERE thread_id = ANY($1::text[])",
    "DELETE FROM checkpoint_blobs WHERE thread_id = ANY($1::text[])",
    "DELETE FROM checkpoints WHERE thread_id = ANY($1::text[])",
    "DELETE FROM threads WHERE thread_id = ANY($1::text[])",
]


def thread_params(thread: ThreadRecord) -> Params:
    return (
        thread.thread_id,
        float(thread.created_at),
        float(thread.updated_at),
        jsonb(thread.metadata, "thread metadata"),
        ThreadStatus(thread.status).value,
        thread.request_id,
    )


# --- runs ---------------------------------------------------------------------

RUN_COLUMNS = (
    "run_id, thread_id, target, state, durability, created_at, updated_at, checkpoint_id,"
    " metadata::text, stream_modes, request_id, has_output, output, interrupts, error,"
    " request_hash, recursion_limit, waiting, trace_context"
)

RUN_NAMESPACE = (
    "(CASE WHEN strpos(thread_id, chr(31)) > 0"
    " THEN split_part(thread_id, chr(31), 1) ELSE 'default' END)"
)
"""The namespace of a run's thread, as the expression that the indexes of
migration 0010 hold: Postgres uses them only for this very expression."""
RUN_WAITS = "waiting <> '[]'"
"""A run that waits (the condition of the partial index runs_waiting_idx)."""

# --- checkpoints and writes ---------------------------------------------------

INSERT_BLOB = """
INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING
"""

# Per-thread advisory locks, held until the transaction ends. A group commit
# takes them shared for the threads whose new checkpoints rely on values stored
# earlier; a prune takes them exclusive. So a checkpoint that points at a value
# cannot interleave with a prune (on another replica) that deletes it. Both
# take their locks in one statement in id order.
LOCK_THREADS_SHARED = (
    "SELECT pg_advisory_xact_lock_shared(hashtextextended('cairn.thread.' || t, 0))"
    " FROM unnest($1::text[]) AS t ORDER BY t"
)
# The rows a group's run starts claim and its leases fence, locked up front in
# id order (see PostgresStore._lock_rows).
LOCK_THREAD_ROWS = (
    "SELECT 1 FROM threads WHERE thread_id = ANY($1::text[]) ORDER BY thread_id FOR UPDATE"
)
LOCK_RUN_ROWS = "SELECT 1 FROM runs WHERE run_id = ANY($1::text[]) ORDER BY run_id FOR UPDATE"
LOCK_THREADS = (
    "SELECT pg_advisory_xact_lock(hashtextextended('cairn.thread.' || t, 0))"
    " FROM unnest($1::text[]) AS t ORDER BY t"
)

# One statement (one snapshot) for checkpoints and their values: a row per
# (checkpoint, channel), or a single row with NULL channel for an empty one.
# Each value is one primary-key probe (LATERAL ... LIMIT 1: as a plain join
# the planner may hash every blob of the thread), so reading the latest
# checkpoint costs the same however long the thread's history is.
SELECT_CHECKPOINTS = """
WITH cp AS (
    SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, channel_versions,
        metadata, created_at, body_type, body
    FROM checkpoints{where}
    ORDER BY checkpoint_id DESC{limit}
)
SELECT cp.thread_id, cp.checkpoint_ns, cp.checkpoint_id, cp.parent_checkpoint_id,
    cp.channel_versions::text, cp.metadata::text, cp.created_at, v.key, b.type, b.blob,
    cp.body_type, cp.body
FROM cp
LEFT JOIN LATERAL jsonb_each_text(cp.channel_versions) AS v ON TRUE
LEFT JOIN LATERAL (
    SELECT blobs.type, blobs.blob FROM checkpoint_blobs AS blobs
    WHERE blobs.thread_id = cp.thread_id AND blobs.checkpoint_ns = cp.checkpoint_ns
        AND blobs.channel = v.key AND blobs.version = v.value
    LIMIT 1
) AS b ON TRUE
ORDER BY cp.checkpoint_id DESC
"""

_WRITE_INSERT = """
INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel,
    type, blob, task_path)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""

INSERT_WRITE = f"{_WRITE_INSERT} ON CONFLICT DO NOTHING"

UPSERT_WRITE = f"""{_WRITE_INSERT}
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET
    channel = excluded.channel, type = excluded.type, blob = excluded.blob,
    task_path = excluded.task_path
"""

SELECT_WRITES = """
SELECT task_id, idx, channel, type, blob, task_path FROM checkpoint_writes
WHERE thread_id = $1 AND checkpoint_ns = $2 AND checkpoint_id = $3
ORDER BY task_path, task_id, idx
"""

# --- events and targets -------------------------------------------------------

# --- retention ----------------------------------------------------------------

# $1: array of thread ids, $2: how many checkpoints to keep per namespace.
_PRUNED = """
SELECT thread_id, checkpoint_ns, checkpoint_id FROM (
    SELECT thread_id, checkpoint_ns, checkpoint_id, row_number() OVER (
        PARTITION BY thread_id, checkpoint_ns ORDER BY checkpoint_id DESC) AS rank
    FROM checkpoints WHERE thread_id = ANY($1::text[])
) AS ranked WHERE rank > $2
"""

PRUNE_CHECKPOINTS = f"""
WITH pruned AS ({_PRUNED}),
gone_writes AS (
    DELETE FROM checkpoint_writes AS w USING pruned AS p
    WHERE w.thread_id = p.thread_id AND w.checkpoint_ns = p.checkpoint_ns
        AND w.checkpoint_id = p.checkpoint_id
)
DELETE FROM checkpoints AS c USING pruned AS p
WHERE c.thread_id = p.thread_id AND c.checkpoint_ns = p.checkpoint_ns
    AND c.checkpoint_id = p.checkpoint_id
"""

# Parameters: thread_id, run_id (each statement).
DELETE_RUN = (
    "DELETE FROM checkpoint_writes WHERE thread_id = $1 AND checkpoint_id IN"
    " (SELECT checkpoint_id FROM checkpoints WHERE thread_id = $1"
    " AND metadata->>'run_id' = $2)",
    "DELETE FROM checkpoints WHERE thread_id = $1 AND metadata->>'run_id' = $2",
    "DELETE FROM run_events WHERE run_id IN (SELECT run_id FROM runs WHERE thread_id = $1"
    " AND run_id = $2)",
    "DELETE FROM runs WHERE thread_id = $1 AND run_id = $2",
)

# Values that no remaining checkpoint of the threads points at.
PRUNE_BLOBS = """
DELETE FROM checkpoint_blobs
WHERE thread_id = ANY($1::text[]) AND (thread_id, checkpoint_ns, channel, version) NOT IN (
    SELECT c.thread_id, c.checkpoint_ns, v.key, v.value
    FROM checkpoints AS c, jsonb_each_text(c.channel_versions) AS v
    WHERE c.thread_id = ANY($1::text[])
)
"""

EXISTING_THREADS = "SELECT thread_id FROM threads WHERE thread_id = ANY($1::text[])"

EXPIRED_AMONG = """
SELECT thread_id FROM threads
WHERE thread_id = ANY($1::text[]) AND updated_at < $2 AND status <> 'busy'
FOR UPDATE
"""

EXPIRED_THREADS = """
SELECT thread_id FROM threads WHERE updated_at < $1 AND status <> 'busy'
ORDER BY updated_at, thread_id LIMIT $2
"""

COUNT_CHECKPOINTS = "SELECT COUNT(*) FROM checkpoints WHERE thread_id = ANY($1::text[])"


# --- LangGraph checkpoints (CheckpointService) --------------------------------
# They live in the native tables; `body_type` is set only on them.

LG_CHECKPOINT_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, body_type, body,"
    " metadata::text, channel_versions::text"
)
# $1 thread id, $2 created_at (= updated_at): the thread a LangGraph checkpoint
# is put in exists for ListThreads and retention; updated_at moves with puts.
LG_TOUCH_THREAD = """
INSERT INTO threads (thread_id, created_at, updated_at, metadata, status, request_id)
VALUES ($1, $2, $2, '{}', 'idle', '')
ON CONFLICT (thread_id) DO UPDATE SET updated_at = excluded.updated_at
"""
LG_UPSERT_CHECKPOINT = """
INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
    body_type, body, metadata, channel_versions, run_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET
    parent_checkpoint_id = excluded.parent_checkpoint_id, body_type = excluded.body_type,
    body = excluded.body, metadata = excluded.metadata,
    channel_versions = excluded.channel_versions, run_id = excluded.run_id
"""
LG_SELECT_CHECKPOINTS = (
    f"SELECT {LG_CHECKPOINT_COLUMNS} FROM checkpoints{{where}}"
    " ORDER BY checkpoint_id DESC, thread_id DESC, checkpoint_ns DESC LIMIT ${limit}"
)
# Rows after a page's last (checkpoint_id, thread_id, checkpoint_ns), from $n.
LG_AFTER = "(checkpoint_id, thread_id, checkpoint_ns) < (${0}, ${1}, ${2})"
# The value of each channel at the version the checkpoint records.
LG_SELECT_BLOBS = """
SELECT b.channel, b.version, b.type, b.blob FROM jsonb_each_text($1::jsonb) AS v
JOIN checkpoint_blobs AS b ON b.thread_id = $2 AND b.checkpoint_ns = $3
    AND b.channel = v.key AND b.version = v.value
"""
LG_SELECT_WRITES = """
SELECT task_id, task_path, idx, channel, type, blob FROM checkpoint_writes
WHERE thread_id = $1 AND checkpoint_ns = $2 AND checkpoint_id = $3
ORDER BY task_path, task_id, idx
"""
# $1: an array of run ids.
IN_NAMESPACE = "thread_id IN (SELECT thread_id FROM threads WHERE namespace = ${})"
"""Rows of the threads of one namespace (format with the parameter's number)."""
# $1 the run ids, $2 the namespace.
LG_DELETE_FOR_RUNS = (
    "DELETE FROM checkpoint_writes AS w USING checkpoints AS c"
    " WHERE c.run_id = ANY($1::text[]) AND w.thread_id = c.thread_id"
    " AND w.checkpoint_ns = c.checkpoint_ns AND w.checkpoint_id = c.checkpoint_id"
    " AND c.thread_id IN (SELECT thread_id FROM threads WHERE namespace = $2)",
    f"DELETE FROM checkpoints WHERE run_id = ANY($1::text[]) AND {IN_NAMESPACE.format(2)}",
)
# The thread row: $1 target thread, $2 source thread, $3 now; the others: $1
# target thread, $2 source thread.
LG_COPY_THREAD = (
    "INSERT INTO threads (thread_id, created_at, updated_at, metadata, status, request_id)"
    " SELECT $1, $3, $3, metadata, 'idle', '' FROM threads WHERE thread_id = $2"
    " ON CONFLICT (thread_id) DO NOTHING",
    "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,"
    " body_type, body, metadata, channel_versions, run_id, created_at)"
    " SELECT $1, checkpoint_ns, checkpoint_id, parent_checkpoint_id, body_type, body, metadata,"
    " channel_versions, run_id, created_at FROM checkpoints WHERE thread_id = $2"
    " ON CONFLICT DO NOTHING",
    "INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)"
    " SELECT $1, checkpoint_ns, channel, version, type, blob FROM checkpoint_blobs"
    " WHERE thread_id = $2 ON CONFLICT DO NOTHING",
    "INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx,"
    " channel, type, blob, task_path) SELECT $1, checkpoint_ns, checkpoint_id, task_id, idx,"
    " channel, type, blob, task_path FROM checkpoint_writes WHERE thread_id = $2"
    " ON CONFLICT DO NOTHING",
)
