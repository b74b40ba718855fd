"""SQL text, row codecs and batch encoding for the SQLite store.

Nothing here touches a connection: `encode_batch` turns a WriteBatch into
statements with their parameter rows (so a value that cannot be encoded fails
before anything is queued), and the `*_from_row` functions rebuild domain
records from result rows.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Protocol

from cairn_server.domain import (
    CheckpointRecord,
    Durability,
    ErrorRecord,
    EventRecord,
    InterruptRecord,
    Json,
    PendingWrite,
    RunRecord,
    RunState,
    StreamMode,
    ThreadRecord,
    ThreadStatus,
    WaitRecord,
)
from cairn_server.store.base import Lease, StoreError, WriteBatch
from cairn_server.store.typed_values import JSON as JSON_BLOB
from cairn_server.store.typed_values import NO_VALUE, decode_typed


class Row(Protocol):
    """A result row of either backend (a tuple, sqlite3.Row, asyncpg.Record)."""

    def __getitem__(self, index: int, /) -> Any: ...


Params = tuple[object, ...]


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
"""One encoder for every value: json.dumps with options builds a new one per call."""


def dumps(value: Json) -> str:
    return _ENCODER.encode(value)


def _blob(value: Json) -> bytes:
    return dumps(value).encode()


# --- migrations -------------------------------------------------------------

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: list[str]


def load_migrations(dialect: str = "sqlite") -> list[Migration]:
    """The packaged `migrations/<dialect>/NNNN_name.sql` files, by version.

    SQLite's are split into statements; a Postgres script runs whole (the
    simple query protocol takes several statements at once)."""
    folder = resources.files("cairn_server.store").joinpath("migrations", dialect)
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise StoreError(f"two migrations numbered {version}: {entry.name}")
        script = entry.read_text()
        statements = split_statements(script) if dialect == "sqlite" else [script]
        found[version] = Migration(version, entry.name, statements)
    return [found[v] for v in sorted(found)]


def split_statements(script: str) -> list[str]:
    """Split a script into statements that end at the end of a line.

    Statements are run one by one (not with executescript, which commits any
    open transaction first) so that all pending migrations share a transaction.
    """
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statement = pending.strip()
            if statement.rstrip(";").strip():
                statements.append(statement)
            pending = ""
    if pending.strip() and not _only_comments(pending):
        raise StoreError(f"unterminated statement in migration: {pending.strip()[:60]!r}")
    return statements


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())


# --- page tokens and filters ------------------------------------------------


def encode_token(key: list[Json]) -> str:
    return base64.urlsafe_b64encode(dumps(key).encode()).decode().rstrip("=")


def decode_token(token: str, size: int) -> list[Json]:
    """The sort key a page token carries; ValueError when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"invalid page token {token!r}") from exc
    if not isinstance(key, list) or len(key) != size:
        raise ValueError(f"invalid page token {token!r}")
    return key


def metadata_filter(
    column: str, metadata: dict[str, Json] | None
) -> tuple[list[str], list[object]]:
    """Conditions matching rows whose JSON `column` has each top-level key equal
    to the given value: same JSON kind (integers and reals count as one kind,
    so a protobuf Struct's 1.0 matches a stored 1) and same value, where
    objects and arrays compare as their minified JSON text."""
    conditions: list[str] = []
    params: list[object] = []
    for key, value in (metadata or {}).items():
        encoded = dumps(value)
        conditions.append(
            f"EXISTS (SELECT 1 FROM json_each({column}) AS m WHERE m.key = ?"
            " AND (CASE m.type WHEN 'integer' THEN 'real' ELSE m.type END)"
            " = (CASE json_type(?) WHEN 'integer' THEN 'real' ELSE json_type(?) END)"
            " AND m.value IS json_extract(?, '$'))"
        )
        params.extend((key, encoded, encoded, encoded))
    return conditions, params


def where(conditions: Iterable[str]) -> str:
    joined = " AND ".join(conditions)
    return f" WHERE {joined}" if joined else ""


# --- threads ----------------------------------------------------------------

THREAD_COLUMNS = "thread_id, created_at, updated_at, metadata, status, request_id"

UPSERT_THREAD = f"""
INSERT INTO threads ({THREAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (thread_id) DO UPDATE SET
    created_at = excluded.created_at, updated_at = excluded.updated_at,
    metadata = excluded.metadata, status = excluded.status, request_id = excluded.request_id
"""

INSERT_THREAD = f"""
INSERT INTO threads ({THREAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (thread_id) DO NOTHING
"""

UPDATE_THREAD_STATUS = "UPDATE threads SET status = ?, updated_at = ? WHERE thread_id = ?"

DELETE_THREAD = [
    "DELETE FROM run_events WHERE run_id IN (SELECT run_id FROM runs WHERE thread_id = ?)",
    "DELETE FROM runs WHERE thread_id = ?",
    "DELETE FROM checkpoint_writes WHERE thread_id = ?",
    "DELETE FROM checkpoint_blobs WHERE thread_id = ?",
    "DELETE FROM checkpoints WHERE thread_id = ?",
]
DELETE_THREAD_ROW = "DELETE FROM threads WHERE thread_id = ?"


def thread_params(thread: ThreadRecord) -> Params:
    return (
        thread.thread_id,
        thread.created_at,
        thread.updated_at,
        dumps(thread.metadata),
        ThreadStatus(thread.status).value,
        thread.request_id,
    )


def thread_from_row(row: Row) -> ThreadRecord:
    return ThreadRecord(
        thread_id=row[0],
        created_at=row[1],
        updated_at=row[2],
        metadata=json.loads(row[3]),
        status=ThreadStatus(row[4]),
        request_id=row[5],
    )


# --- runs -------------------------------------------------------------------

RUN_COLUMNS = (
    "run_id, thread_id, target, state, durability, created_at, updated_at, checkpoint_id,"
    " metadata, stream_modes, request_id, has_output, output, interrupts, error, request_hash,"
    " recursion_limit, waiting, trace_context"
)

RUN_NAMESPACE = "namespace"
"""The namespace of a run's thread: a virtual column indexed with run_id
(migration 0010)."""
RUN_WAITS = "waiting <> '[]'"
"""A run that waits: the condition of the partial index runs_waiting_idx,
word for word, or SQLite does not see that the index holds every such run."""

UPSERT_RUN = f"""
INSERT INTO runs ({RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (run_id) DO UPDATE SET
    thread_id = excluded.thread_id, target = excluded.target, state = excluded.state,
    durability = excluded.durability, created_at = excluded.created_at,
    updated_at = excluded.updated_at, checkpoint_id = excluded.checkpoint_id,
    metadata = excluded.metadata, stream_modes = excluded.stream_modes,
    request_id = excluded.request_id, has_output = excluded.has_output,
    output = excluded.output, interrupts = excluded.interrupts, error = excluded.error,
    request_hash = excluded.request_hash, recursion_limit = excluded.recursion_limit,
    waiting = excluded.waiting, trace_context = excluded.trace_context
"""


# WriteBatch.timers: the run is nobody's until due; its lease ends.
SET_TIMER = (
    "UPDATE runs SET owner_id = '', lease_token = lease_token + 1, wake_at = ? WHERE run_id = ?"
)


# WriteBatch.clear_interrupt_timers.
CLEAR_INTERRUPT_TIMERS = (
    "UPDATE runs SET wake_at = NULL"
    " WHERE thread_id = ? AND state = 'interrupted' AND wake_at IS NOT NULL"
)


def run_params(run: RunRecord) -> Params:
    return (
        run.run_id,
        run.thread_id,
        run.target,
        RunState(run.state).value,
        Durability(run.durability).value,
        run.created_at,
        run.updated_at,
        run.checkpoint_id,
        dumps(run.metadata),
        dumps([StreamMode(mode).value for mode in run.stream_modes]),
        run.request_id,
        int(run.has_output),
        dumps(run.output) if run.has_output else None,
        dumps([interrupt.to_json() for interrupt in run.interrupts]),
        dumps(run.error.to_json()) if run.error is not None else None,
        run.request_hash,
        run.recursion_limit,
        dumps([waiting.to_json() for waiting in run.waiting]),
        dumps(run.trace_context),
    )


def run_from_row(row: Row) -> RunRecord:
    return RunRecord(
        run_id=row[0],
        thread_id=row[1],
        target=row[2],
        state=RunState(row[3]),
        durability=Durability(row[4]),
        created_at=row[5],
        updated_at=row[6],
        checkpoint_id=row[7],
        metadata=json.loads(row[8]),
        stream_modes=[StreamMode(mode) for mode in json.loads(row[9])],
        request_id=row[10],
        has_output=bool(row[11]),
        output=json.loads(row[12]) if row[11] else None,
        interrupts=[InterruptRecord.from_json(item) for item in json.loads(row[13])],
        error=ErrorRecord.from_json(json.loads(row[14])) if row[14] is not None else None,
        request_hash=row[15],
        recursion_limit=int(row[16]),
        waiting=[WaitRecord.from_json(item) for item in json.loads(row[17])],
        trace_context=json.loads(row[18]),
    )


# --- checkpoints and writes -------------------------------------------------

INSERT_CHECKPOINT = """
INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
    channel_versions, metadata, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING
"""

INSERT_BLOB = """
INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING
"""

# Channels a checkpoint lists without sending a value must point at a stored blob.
MISSING_BLOBS = """
SELECT v.key FROM json_each(?) AS v
WHERE NOT EXISTS (
    SELECT 1 FROM checkpoint_blobs AS b
    WHERE b.thread_id = ? AND b.checkpoint_ns = ? AND b.channel = v.key AND b.version = v.value
)
"""

# One statement (one snapshot) for checkpoints and their values: a row per
# (checkpoint, channel), or a single row with NULL channel for an empty one.
SELECT_CHECKPOINTS = """
WITH cp AS (
    SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, channel_versions,
        metadata, created_at, body_type, body
    FROM checkpoints{where}
    ORDER BY checkpoint_id DESC{limit}
)
SELECT cp.thread_id, cp.checkpoint_ns, cp.checkpoint_id, cp.parent_checkpoint_id,
    cp.channel_versions, cp.metadata, cp.created_at, v.key, b.type, b.blob,
    cp.body_type, cp.body
FROM cp
LEFT JOIN json_each(cp.channel_versions) AS v
LEFT JOIN checkpoint_blobs AS b
    ON b.thread_id = cp.thread_id AND b.checkpoint_ns = cp.checkpoint_ns
    AND b.channel = v.key AND b.version = v.value
ORDER BY cp.checkpoint_id DESC
"""

INSERT_WRITE = """
INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel,
    type, blob, task_path)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING
"""

UPSERT_WRITE = """
INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel,
    type, blob, task_path)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET
    channel = excluded.channel, type = excluded.type, blob = excluded.blob,
    task_path = excluded.task_path
"""

SELECT_WRITES = """
SELECT task_id, idx, channel, type, blob, task_path FROM checkpoint_writes
WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?
ORDER BY task_path, task_id, idx
"""


def checkpoints_from_rows(rows: Iterable[Row]) -> list[CheckpointRecord]:
    """Fold SELECT_CHECKPOINTS rows (grouped by checkpoint) into records."""
    records: list[CheckpointRecord] = []
    for row in rows:
        if not records or records[-1].checkpoint_id != row[2]:
            records.append(
                CheckpointRecord(
                    thread_id=row[0],
                    checkpoint_ns=row[1],
                    checkpoint_id=row[2],
                    parent_checkpoint_id=row[3],
                    channel_values={},
                    channel_versions=json.loads(row[4]),
                    metadata=json.loads(row[5]),
                    created_at=row[6],
                    langgraph=None if row[10] is None else _langgraph_body(row[10], row[11]),
                )
            )
        channel = row[7]
        if channel is None or row[8] == NO_VALUE:
            continue
        if row[8] is None:
            raise StoreError(
                f"checkpoint {row[2]!r} of thread {row[0]!r} lists channel {channel!r}"
                " but its value is missing"
            )
        records[-1].channel_values[channel] = decode_typed(row[8], row[9])
    return records


def _langgraph_body(kind: str, body: bytes | None) -> dict[str, Json]:
    decoded = decode_typed(kind, body)
    return decoded if isinstance(decoded, dict) else {"checkpoint": decoded}


def write_from_row(row: Row) -> PendingWrite:
    return PendingWrite(
        task_id=row[0],
        idx=row[1],
        channel=row[2],
        value=decode_typed(row[3], row[4]),
        task_path=row[5],
    )


# --- events and targets -----------------------------------------------------

INSERT_EVENT = """
INSERT INTO run_events (run_id, event_id, created_at, kind, payload) VALUES (?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING
"""

INSERT_TARGET = "INSERT INTO targets (name, registered_at) VALUES (?, ?) ON CONFLICT DO NOTHING"

UPSERT_GRAPH = """
INSERT INTO graphs (name, spec, registered_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, registered_at = excluded.registered_at
"""


def event_from_row(row: Row) -> EventRecord:
    return EventRecord(
        run_id=row[0], event_id=row[1], created_at=row[2], kind=row[3], payload=json.loads(row[4])
    )


# --- batches ----------------------------------------------------------------


@dataclass(slots=True)
class BlobCheck:
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    versions: str
    """JSON object {channel: version} of the channels sent without a value."""


@dataclass(slots=True)
class EncodedBatch:
    """A WriteBatch as statements with their parameter rows, in apply order."""

    steps: list[tuple[str, list[Params]]] = field(default_factory=list)
    blob_checks: list[BlobCheck] = field(default_factory=list)
    lease: Lease | None = None
    claim_thread: str = ""
    claim_thread_at: float | None = None

    def add(self, sql: str, rows: list[Params]) -> None:
        if rows:
            self.steps.append((sql, rows))


def check_versions(cp: CheckpointRecord) -> None:
    """ValueError when the checkpoint sends a value for a channel it gives
    no version (each backend's batch encoder checks before writing)."""
    unknown = set(cp.channel_values) - set(cp.channel_versions)
    if unknown:
        raise ValueError(
            f"checkpoint {cp.checkpoint_id!r} has values for channels without a version:"
            f" {sorted(unknown)}"
        )


def encode_batch(batch: WriteBatch) -> EncodedBatch:
    """Encode every value of `batch`; raises TypeError or ValueError for a value
    that is not JSON (a set, NaN, ...) before anything is written."""
    encoded = EncodedBatch(
        lease=batch.lease, claim_thread=batch.claim_thread, claim_thread_at=batch.claim_thread_at
    )
    encoded.add(UPSERT_THREAD, [thread_params(t) for t in batch.threads])
    encoded.add(
        UPDATE_THREAD_STATUS,
        [(ThreadStatus(c.status).value, c.updated_at, c.thread_id) for c in batch.thread_statuses],
    )
    encoded.add(UPSERT_RUN, [run_params(r) for r in batch.runs])
    encoded.add(SET_TIMER, [(float(wake_at), run_id) for run_id, wake_at in batch.timers])
    if batch.clear_interrupt_timers:
        encoded.add(CLEAR_INTERRUPT_TIMERS, [(batch.clear_interrupt_timers,)])

    checkpoints: list[Params] = []
    blobs: list[Params] = []
    for cp in batch.checkpoints:
        check_versions(cp)
        checkpoints.append(
            (
                cp.thread_id,
                cp.checkpoint_ns,
                cp.checkpoint_id,
                cp.parent_checkpoint_id,
                dumps(cp.channel_versions),
                dumps(cp.metadata),
                cp.created_at,
            )
        )
        for channel, value in cp.channel_values.items():
            version = cp.channel_versions[channel]
            blobs.append(
                (cp.thread_id, cp.checkpoint_ns, channel, version, JSON_BLOB, _blob(value))
            )
        unsent = {ch: v for ch, v in cp.channel_versions.items() if ch not in cp.channel_values}
        if unsent:
            encoded.blob_checks.append(
                BlobCheck(cp.thread_id, cp.checkpoint_ns, cp.checkpoint_id, dumps(unsent))
            )
    encoded.add(INSERT_CHECKPOINT, checkpoints)
    encoded.add(INSERT_BLOB, blobs)

    inserts: list[Params] = []
    upserts: list[Params] = []
    for ws in batch.writes:
        for w in ws.writes:
            row = (
                ws.thread_id,
                ws.checkpoint_ns,
                ws.checkpoint_id,
                w.task_id,
                w.idx,
                w.channel,
                JSON_BLOB,
                _blob(w.value),
                w.task_path,
            )
            (upserts if w.idx < 0 else inserts).append(row)
    encoded.add(INSERT_WRITE, inserts)
    encoded.add(UPSERT_WRITE, upserts)

    encoded.add(
        INSERT_EVENT,
        [(e.run_id, e.event_id, e.created_at, e.kind, dumps(e.payload)) for e in batch.events],
    )
    now = time.time()
    encoded.add(INSERT_TARGET, [(name, now) for name in batch.targets])
    encoded.add(UPSERT_GRAPH, [(name, dumps(spec), now) for name, spec in batch.graphs])
    return encoded


# --- retention ----------------------------------------------------------------

# The checkpoints of one thread beyond the newest N of each namespace.
_PRUNED = """
SELECT checkpoint_ns, checkpoint_id FROM (
    SELECT checkpoint_ns, checkpoint_id, row_number() OVER (
        PARTITION BY checkpoint_ns ORDER BY checkpoint_id DESC) AS rank
    FROM checkpoints WHERE thread_id = ?
) WHERE rank > ?
"""

PRUNE_WRITES = f"""
DELETE FROM checkpoint_writes
WHERE thread_id = ? AND (checkpoint_ns, checkpoint_id) IN ({_PRUNED})
"""

PRUNE_CHECKPOINTS = f"""
DELETE FROM checkpoints
WHERE thread_id = ? AND (checkpoint_ns, checkpoint_id) IN ({_PRUNED})
"""

# Values that no remaining checkpoint of the thread points at.
PRUNE_BLOBS = """
DELETE FROM checkpoint_blobs
WHERE thread_id = ? AND (checkpoint_ns, channel, version) NOT IN (
    SELECT c.checkpoint_ns, v.key, v.value
    FROM checkpoints AS c, json_each(c.channel_versions) AS v
    WHERE c.thread_id = ?
)
"""

# Parameters: thread_id, run_id (each statement).
DELETE_RUN = (
    "DELETE FROM checkpoint_writes WHERE thread_id = ? AND checkpoint_id IN"
    " (SELECT checkpoint_id FROM checkpoints WHERE thread_id = checkpoint_writes.thread_id"
    " AND json_extract(metadata, '$.run_id') = ?)",
    "DELETE FROM checkpoints WHERE thread_id = ? AND json_extract(metadata, '$.run_id') = ?",
    "DELETE FROM run_events WHERE run_id IN (SELECT run_id FROM runs WHERE thread_id = ?"
    " AND run_id = ?)",
    "DELETE FROM runs WHERE thread_id = ? AND run_id = ?",
)

# `?` is a JSON array of thread ids.
_IDS = "(SELECT value FROM json_each(?))"

EXISTING_THREADS = f"SELECT thread_id FROM threads WHERE thread_id IN {_IDS}"

EXPIRED_AMONG = f"""
SELECT thread_id FROM threads
WHERE thread_id IN {_IDS} AND updated_at < ? AND status <> 'busy'
"""

EXPIRED_THREADS = """
SELECT thread_id FROM threads WHERE updated_at < ? AND status <> 'busy'
ORDER BY updated_at, thread_id LIMIT ?
"""

COUNT_CHECKPOINTS = f"SELECT COUNT(*) FROM checkpoints WHERE thread_id IN {_IDS}"

DELETE_THREADS = [
    f"DELETE FROM run_events WHERE run_id IN (SELECT run_id FROM runs WHERE thread_id IN {_IDS})",
    f"DELETE FROM runs WHERE thread_id IN {_IDS}",
    f"DELETE FROM checkpoint_writes WHERE thread_id IN {_IDS}",
    f"DELETE FROM checkpoint_blobs WHERE thread_id IN {_IDS}",
    f"DELETE FROM checkpoints WHERE thread_id IN {_IDS}",
    f"DELETE FROM threads WHERE thread_id IN {_IDS}",
]


# --- LangGraph checkpoints (CheckpointService) ------------------------------
# They live in the native tables; `body_type` is set only on them.

LG_CHECKPOINT_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, body_type, body,"
    " metadata, channel_versions"
)
# Parameters: thread id, created_at (= updated_at). The thread a LangGraph
# checkpoint is put in exists for ListThreads and retention; its updated_at
# moves with each put.
LG_TOUCH_THREAD = (
    f"INSERT INTO threads ({THREAD_COLUMNS}) VALUES (?, ?, ?, '{{}}', 'idle', '')"
    " ON CONFLICT (thread_id) DO UPDATE SET updated_at = excluded.updated_at"
)
LG_UPSERT_CHECKPOINT = (
    f"INSERT INTO checkpoints ({LG_CHECKPOINT_COLUMNS}, run_id, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET"
    " parent_checkpoint_id = excluded.parent_checkpoint_id, body_type = excluded.body_type,"
    " body = excluded.body, metadata = excluded.metadata,"
    " channel_versions = excluded.channel_versions, run_id = excluded.run_id"
)
LG_SELECT_CHECKPOINTS = (
    f"SELECT {LG_CHECKPOINT_COLUMNS} FROM checkpoints{{where}}"
    " ORDER BY checkpoint_id DESC, thread_id DESC, checkpoint_ns DESC LIMIT ?"
)
# Rows after a page's last (checkpoint_id, thread_id, checkpoint_ns).
LG_AFTER = "(checkpoint_id, thread_id, checkpoint_ns) < (?, ?, ?)"
# The value of each channel at the version the checkpoint records.
LG_SELECT_BLOBS = (
    "SELECT b.channel, b.version, b.type, b.blob FROM json_each(?) AS v"
    " JOIN checkpoint_blobs AS b ON b.thread_id = ? AND b.checkpoint_ns = ?"
    " AND b.channel = v.key AND b.version = v.value"
)
LG_SELECT_WRITES = (
    "SELECT task_id, task_path, idx, channel, type, blob FROM checkpoint_writes"
    " WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"
    " ORDER BY task_path, task_id, idx"
)
# Parameter: the run ids as a JSON array.
IN_NAMESPACE = "thread_id IN (SELECT thread_id FROM threads WHERE namespace = ?)"
"""Rows of the threads of one namespace (a parameter)."""
# Parameters: the run ids as a JSON list, the namespace.
LG_DELETE_FOR_RUNS = (
    "DELETE FROM checkpoint_writes WHERE EXISTS (SELECT 1 FROM checkpoints AS c"
    f" WHERE c.run_id IN {_IDS} AND c.thread_id = checkpoint_writes.thread_id"
    " AND c.checkpoint_ns = checkpoint_writes.checkpoint_ns"
    f" AND c.checkpoint_id = checkpoint_writes.checkpoint_id) AND {IN_NAMESPACE}",
    f"DELETE FROM checkpoints WHERE run_id IN {_IDS} AND {IN_NAMESPACE}",
)
# Parameters: target thread, created_at, source thread (the thread row); then
# target thread, source thread.
LG_COPY_THREAD = (
    f"INSERT INTO threads ({THREAD_COLUMNS}) SELECT ?, ?, ?, metadata, 'idle', ''"
    " FROM threads WHERE thread_id = ? ON CONFLICT (thread_id) DO NOTHING",
    f"INSERT OR IGNORE INTO checkpoints ({LG_CHECKPOINT_COLUMNS}, run_id, created_at)"
    " SELECT ?, checkpoint_ns, checkpoint_id, parent_checkpoint_id, body_type, body,"
    " metadata, channel_versions, run_id, created_at FROM checkpoints WHERE thread_id = ?",
    "INSERT OR IGNORE INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type,"
    " blob) SELECT ?, checkpoint_ns, channel, version, type, blob FROM checkpoint_blobs"
    " WHERE thread_id = ?",
    "INSERT OR IGNORE INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id,"
    " idx, channel, type, blob, task_path) SELECT ?, checkpoint_ns, checkpoint_id, task_id, idx,"
    " channel, type, blob, task_path FROM checkpoint_writes WHERE thread_id = ?",
)
