"""The SQLite store: the standard library's sqlite3, each connection with a
thread of its own for the calls that should not block the event loop.

One writer connection applies jobs (batches, thread creation and deletion).
A job submitted while the writer is idle is applied at once, on the event
loop: in WAL mode with synchronous=NORMAL a commit only appends to the WAL,
which costs less than the hops to a thread and back. Otherwise it waits in a
queue that a background task drains: every job queued at that moment goes in
one transaction (group commit), each inside its own savepoint, so a failing
job is rolled back and reported to its caller alone while the others commit;
such a group is written on the writer's thread, so that the loop keeps
serving meanwhile. The WAL is checkpointed on that thread too, every few
hundred commits, never inside a commit on the loop. Reads use a second
connection: in WAL mode they see the last committed state and never wait for
the writer.

An in-memory database has a single connection; a lock then keeps reads out of
the writer's open transaction.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from cairn_server.domain import (
    CheckpointRecord,
    EventRecord,
    Json,
    PendingWrite,
    RunRecord,
    RunState,
    ThreadRecord,
    ThreadStatus,
)
from cairn_server.metrics import Metrics
from cairn_server.namespaces import DEFAULT as DEFAULT_NAMESPACE
from cairn_server.store import _sqlite_sql as q
from cairn_server.store import leases
from cairn_server.store._retention import check_keep_latest, prune_result, unique_ids
from cairn_server.store.base import (
    LeaseLost,
    LgBlob,
    LgCheckpoint,
    LgWrite,
    PruneResult,
    Store,
    StoreError,
    StoreUnavailable,
    ThreadAlreadyExists,
    WriteBatch,
)
from cairn_server.store.leases import LeaseQueries

log = logging.getLogger(__name__)

_BUSY_TIMEOUT_MS = 5_000
_MEMORY = ":memory:"

_CHECKPOINT_EVERY = 256
"""Commits between two WAL checkpoints (the writer's automatic ones are off)."""

T = TypeVar("T")

_Apply = Callable[[sqlite3.Connection], object]
"""A job's writes, as blocking calls on the writer connection: a group of
jobs is applied in one call instead of one hop per statement."""


class _Connection:
    """A sqlite3 connection and the one thread that runs its blocking calls
    (`call`); `raw` is for the few calls made on the event loop itself, never
    while a call of the thread is running."""

    def __init__(self, raw: sqlite3.Connection, thread: concurrent.futures.Executor) -> None:
        self.raw = raw
        self._thread = thread

    @classmethod
    async def open(cls, path: str) -> _Connection:
        thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="cairn-sqlite")

        def connect() -> sqlite3.Connection:
            # isolation_level=None: no implicit transactions; BEGIN/COMMIT are ours.
            raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            try:
                raw.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                raw.execute("PRAGMA foreign_keys = ON")
            except BaseException:
                raw.close()
                raise
            return raw

        try:
            raw = await asyncio.get_running_loop().run_in_executor(thread, connect)
        except BaseException:
            thread.shutdown(wait=False)
            raise
        return cls(raw, thread)

    async def call(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """`fn(raw)` on this connection's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, self.raw)

    async def close(self) -> None:
        try:
            await self.call(lambda raw: raw.close())
        finally:
            self._thread.shutdown(wait=False)


class _Wake(enum.Enum):
    """What the write loop is woken for besides jobs."""

    CHECKPOINT = "checkpoint"
    STOP = "stop"


@dataclass(slots=True)
class _Job:
    apply: _Apply
    future: asyncio.Future[object]


class SqliteStore(LeaseQueries, Store):
    """A Store in one SQLite file (or in memory).

    Example::

        store = SqliteStore.from_url("sqlite:///cairn.db")
        await store.open()
        try:
            await store.commit(WriteBatch(targets=["checkout"]))
        finally:
            await store.close()
    """

    def __init__(self, path: str | Path, *, metrics: Metrics | None = None) -> None:
        self._path = str(path)
        self.metrics = metrics if metrics is not None else Metrics()
        """Commit latency, group sizes, errors and fencing rejections."""
        self._writer: _Connection | None = None
        self._reader: _Connection | None = None
        self._commits = 0  # since the last WAL checkpoint
        self._writing = False  # the write loop is applying a group or checkpointing
        self._shared_lock: asyncio.Lock | None = None
        self._queue: asyncio.Queue[_Job | _Wake] | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._closing = False

    @classmethod
    def from_url(cls, url: str, *, metrics: Metrics | None = None) -> SqliteStore:
        """`sqlite:///relative.db`, `sqlite:////absolute.db` or `sqlite://:memory:`."""
        scheme, sep, rest = url.partition("://")
        if scheme != "sqlite" or not sep:
            raise ValueError(f"not a sqlite URL: {url!r}")
        if rest in (_MEMORY, "/" + _MEMORY):
            return cls(_MEMORY, metrics=metrics)
        if not rest.startswith("/") or len(rest) < 2 or "?" in rest:
            raise ValueError(
                f"unsupported sqlite URL {url!r}; expected sqlite:///relative.db,"
                " sqlite:////absolute.db or sqlite://:memory:"
            )
        return cls(rest[1:], metrics=metrics)

    @property
    def in_memory(self) -> bool:
        return self._path == _MEMORY

    @property
    def location(self) -> str:
        """Where the data lives, for people: the file's absolute path."""
        return "in memory" if self.in_memory else str(Path(self._path).resolve())

    # --- lifecycle --------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None or self._closing:
            raise StoreError("store already opened")
        try:
            await self._connect_all()
        except BaseException:
            await self._disconnect()
            raise
        self._queue = asyncio.Queue()
        self._writer_task = asyncio.create_task(self._write_loop(self._queue))

    async def _connect_all(self) -> None:
        if self.in_memory:
            writer = await _Connection.open(_MEMORY)
            self._writer = writer
            await writer.call(self._migrate)
            self._reader = writer
            self._shared_lock = asyncio.Lock()
        else:
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            writer = await _Connection.open(self._path)
            self._writer = writer
            mode = await writer.call(_enable_wal)
            if str(mode).lower() != "wal":
                log.warning("sqlite journal mode is %s, not wal, for %s", mode, self._path)
            await writer.call(_configure_writer)
            await writer.call(self._migrate)
            reader = await _Connection.open(self._path)
            self._reader = reader
            await reader.call(lambda raw: raw.execute("PRAGMA query_only = ON"))

    async def close(self) -> None:
        """Apply every batch already submitted, then disconnect."""
        if self._closing:
            return
        self._closing = True
        if self._queue is not None and self._writer_task is not None:
            self._queue.put_nowait(_Wake.STOP)
            await self._writer_task
        await self._disconnect()

    async def _disconnect(self) -> None:
        reader, writer = self._reader, self._writer
        self._reader = self._writer = None
        if reader is not None and reader is not writer:
            await reader.close()
        if writer is not None:
            await writer.close()

    def _migrate(self, raw: sqlite3.Connection) -> None:
        """Apply the pending numbered migrations in one transaction."""
        migrations = q.load_migrations()
        raw.execute("BEGIN IMMEDIATE")
        try:
            raw.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            applied = dict(raw.execute("SELECT version, name FROM schema_migrations").fetchall())
            known = {m.version: m.name for m in migrations}
            for version, name in applied.items():
                if version not in known:
                    raise StoreError(
                        f"database {self._path} has migration {version} ({name}) that this"
                        " server does not know; it was written by a newer version"
                    )
                if known[version] != name:
                    raise StoreError(
                        f"migration {version} is {known[version]} here but {name} in the"
                        " database; migrations must never be renumbered"
                    )
            for migration in migrations:
                if migration.version in applied:
                    continue
                log.info("applying sqlite migration %s", migration.name)
                for statement in migration.statements:
                    raw.execute(statement)
                raw.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, time.time()),
                )
            # A file serves one server at a time: rows of earlier lives are
            # stale, so the runs they held are claimed at once.
            raw.execute(leases.FORGET_REPLICAS)
            raw.execute("COMMIT")
        except BaseException:
            raw.execute("ROLLBACK")
            raise

    # --- the writer ---------------------------------------------------------

    def _enqueue(self, apply: _Apply) -> asyncio.Future[object]:
        if self._closing or self._queue is None:
            raise StoreError("store is not open")
        job = _Job(apply, asyncio.get_running_loop().create_future())
        lock = self._shared_lock
        if not self._writing and self._queue.empty() and not (lock and lock.locked()):
            self._write_now([job])  # the writer is idle: no reason to queue
        else:
            self._queue.put_nowait(job)
        return job.future

    async def _submit(self, apply: _Apply) -> object:
        # A cancelled caller does not withdraw its job: it was submitted, so it
        # is applied in order all the same.
        return await asyncio.shield(self._enqueue(apply))

    async def _write_loop(self, queue: asyncio.Queue[_Job | _Wake]) -> None:
        stop = False
        while not stop:
            item = await queue.get()
            jobs: list[_Job] = []
            while True:
                if isinstance(item, _Job):
                    jobs.append(item)
                elif item is _Wake.STOP:
                    stop = True
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
            self._writing = True
            try:
                if jobs:
                    await self._write_group(jobs)
                if self._commits >= _CHECKPOINT_EVERY or (stop and self._commits):
                    await self._checkpoint()
            finally:
                self._writing = False

    async def _checkpoint(self) -> None:
        """Copy the WAL back into the database, on the writer's thread."""
        conn = self._writer
        assert conn is not None
        self._commits = 0
        if self.in_memory:
            return
        try:
            await conn.call(lambda raw: raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall())
        except sqlite3.Error:
            log.warning("sqlite WAL checkpoint failed; the next one tries again", exc_info=True)

    async def _write_group(self, jobs: list[_Job]) -> None:
        """Apply `jobs` in one transaction, one savepoint each, then resolve them."""
        conn = self._writer
        assert conn is not None
        lock = self._shared_lock or contextlib.nullcontext()
        async with lock:
            if len(jobs) == 1:  # on the loop: see the module's docstring
                self._write_now(jobs)
                return
            start = time.perf_counter()
            try:
                applied = await conn.call(lambda raw: _apply_group(raw, jobs, savepoints=True))
            except Exception as exc:
                self._failed(jobs, exc)
            else:
                self._timed(jobs, start)
                self._applied(jobs, applied)

    def _write_now(self, jobs: list[_Job]) -> None:
        """Apply `jobs` on the loop, now, and resolve them."""
        conn = self._writer
        assert conn is not None
        start = time.perf_counter()
        try:
            applied = _apply_group(conn.raw, jobs, savepoints=len(jobs) > 1)
        except Exception as exc:
            self._failed(jobs, exc)
        else:
            self._timed(jobs, start)
            self._applied(jobs, applied)

    def _timed(self, jobs: list[_Job], start: float) -> None:
        self.metrics.store_commit.observe(time.perf_counter() - start)
        self.metrics.store_group_size.observe(len(jobs))

    def _failed(self, jobs: list[_Job], exc: Exception) -> None:
        failure = _as_store_error(exc)
        leases.count_failure(self.metrics, failure, len(jobs))
        if isinstance(failure, StoreUnavailable):
            log.warning("sqlite group commit of %d jobs failed: %s", len(jobs), exc)
        else:
            log.error("sqlite group commit of %d jobs failed", len(jobs), exc_info=exc)
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(failure)

    def _applied(self, jobs: list[_Job], applied: list[tuple[Exception | None, object]]) -> None:
        for job, (error, result) in zip(jobs, applied, strict=True):
            if job.future.done():
                continue
            if error is not None:
                leases.count_failure(self.metrics, error)
                job.future.set_exception(error)
            else:
                job.future.set_result(result)
        self._commits += 1
        if self._commits == _CHECKPOINT_EVERY and self._queue is not None:
            self._queue.put_nowait(_Wake.CHECKPOINT)  # the write loop may be asleep

    # --- writes -------------------------------------------------------------

    def submit(self, batch: WriteBatch) -> asyncio.Future[object]:
        # Encoding first: a value that is not JSON fails here, with nothing queued.
        encoded = q.encode_batch(batch)
        return self._enqueue(lambda raw: _apply_batch(raw, encoded))

    async def create_thread(self, thread: ThreadRecord) -> None:
        params = q.thread_params(thread)

        def apply(raw: sqlite3.Connection) -> object:
            if raw.execute(q.INSERT_THREAD, params).rowcount == 0:
                raise ThreadAlreadyExists(thread.thread_id)
            return None

        await self._submit(apply)

    async def delete_thread(self, thread_id: str) -> bool:
        def apply(raw: sqlite3.Connection) -> object:
            for sql in q.DELETE_THREAD:
                raw.execute(sql, (thread_id,))
            return raw.execute(q.DELETE_THREAD_ROW, (thread_id,)).rowcount > 0

        return bool(await self._submit(apply))

    async def delete_run(self, thread_id: str, run_id: str) -> None:
        def apply(raw: sqlite3.Connection) -> object:
            for sql in q.DELETE_RUN:
                raw.execute(sql, (thread_id, run_id))
            raw.execute(q.PRUNE_BLOBS, (thread_id, thread_id))
            return None

        await self._submit(apply)

    # --- retention ----------------------------------------------------------

    async def prune_checkpoints(
        self, thread_ids: Sequence[str], *, keep_latest: int
    ) -> PruneResult:
        ids = unique_ids(thread_ids)
        check_keep_latest(keep_latest)

        def apply(raw: sqlite3.Connection) -> object:
            existing = _column(raw, q.EXISTING_THREADS, (q.dumps(ids),))
            deleted = 0
            for thread_id in ids:
                raw.execute(q.PRUNE_WRITES, (thread_id, thread_id, keep_latest))
                params = (thread_id, thread_id, keep_latest)
                deleted += raw.execute(q.PRUNE_CHECKPOINTS, params).rowcount
                raw.execute(q.PRUNE_BLOBS, (thread_id, thread_id))
            return PruneResult([i for i in ids if i in existing], deleted)

        return prune_result(await self._submit(apply))

    async def delete_threads(
        self, thread_ids: Sequence[str], *, updated_before: float | None = None
    ) -> PruneResult:
        ids = unique_ids(thread_ids)

        def apply(raw: sqlite3.Connection) -> object:
            if updated_before is None:
                existing = _column(raw, q.EXISTING_THREADS, (q.dumps(ids),))
                doomed = q.dumps(ids)
            else:
                existing = _column(raw, q.EXPIRED_AMONG, (q.dumps(ids), float(updated_before)))
                doomed = q.dumps(sorted(existing))
            counted = raw.execute(q.COUNT_CHECKPOINTS, (doomed,)).fetchone()[0]
            for sql in q.DELETE_THREADS:
                raw.execute(sql, (doomed,))
            return PruneResult([i for i in ids if i in existing], int(counted))

        return prune_result(await self._submit(apply))

    async def expired_threads(self, updated_before: float, *, limit: int) -> list[str]:
        _check_limit(limit)
        rows = await self._fetch(q.EXPIRED_THREADS, (float(updated_before), limit))
        return [row[0] for row in rows]

    # --- the connections, for the memory store (cairn_server/memory) ----------

    async def call_reader(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn(connection)` on the reader's thread: it sees the last committed
        state and may open a read transaction of its own (it must end it).
        Database errors reach the caller as StoreError."""
        conn = self._reader
        if conn is None:
            raise StoreError("store is not open")
        lock = self._shared_lock or contextlib.nullcontext()
        async with lock:
            try:
                return cast(T, await conn.call(fn))
            except sqlite3.Error as exc:
                raise _as_store_error(exc) from exc

    async def call_writer(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn(connection)` as a job of the writer, in the group commit of the
        store's own writes: its statements commit together, or not at all
        when it raises."""
        return cast(T, await self._submit(fn))

    # --- reads --------------------------------------------------------------

    async def _fetch(self, sql: str, params: Sequence[object] = ()) -> list[q.Row]:
        return list(await self.call_reader(lambda raw: raw.execute(sql, params).fetchall()))

    async def _lease_rows(self, sql: str, params: Sequence[object], *, write: bool) -> list[Any]:
        if write:
            rows = await self._submit(lambda raw: raw.execute(sql, params).fetchall())
            return list(cast(list[Any], rows))
        return list(await self._fetch(sql, params))

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        rows = await self._fetch(
            f"SELECT {q.THREAD_COLUMNS} FROM threads WHERE thread_id = ?", (thread_id,)
        )
        return q.thread_from_row(rows[0]) if rows else None

    async def list_threads(
        self,
        *,
        limit: int,
        page_token: str = "",
        metadata: dict[str, Json] | None = None,
        status: ThreadStatus | None = None,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> tuple[list[ThreadRecord], str]:
        _check_limit(limit)
        conditions, params = q.metadata_filter("metadata", metadata)
        conditions.insert(0, "namespace = ?")
        params.insert(0, namespace)
        if page_token:
            created_at, thread_id = q.decode_token(page_token, 2)
            conditions.append("(created_at, thread_id) < (?, ?)")
            params.extend((created_at, thread_id))
        if status is not None:
            conditions.append("status = ?")
            params.append(ThreadStatus(status).value)
        rows = await self._fetch(
            f"SELECT {q.THREAD_COLUMNS} FROM threads{q.where(conditions)}"
            " ORDER BY created_at DESC, thread_id DESC LIMIT ?",
            (*params, limit + 1),
        )
        threads = [q.thread_from_row(row) for row in rows[:limit]]
        if len(rows) <= limit:
            return threads, ""
        last = threads[-1]
        return threads, q.encode_token([last.created_at, last.thread_id])

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._fetch(f"SELECT {q.RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,))
        return q.run_from_row(rows[0]) if rows else None

    async def find_run_by_request_id(self, thread_id: str, request_id: str) -> RunRecord | None:
        if not request_id:
            return None
        rows = await self._fetch(
            # `request_id <> ''` lets SQLite use the partial unique index.
            f"SELECT {q.RUN_COLUMNS} FROM runs"
            " WHERE thread_id = ? AND request_id = ? AND request_id <> ''",
            (thread_id, request_id),
        )
        return q.run_from_row(rows[0]) if rows else None

    async def list_runs(
        self,
        thread_id: str | None,
        *,
        limit: int,
        page_token: str = "",
        state: RunState | None = None,
        waiting: bool = False,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> tuple[list[RunRecord], str]:
        _check_limit(limit)
        params: list[object]
        if thread_id is None:
            conditions, params = [f"{q.RUN_NAMESPACE} = ?"], [namespace]
        else:
            conditions, params = ["thread_id = ?"], [thread_id]
        if page_token:
            (after,) = q.decode_token(page_token, 1)
            conditions.append("run_id < ?")
            params.append(after)
        if state is not None:
            conditions.append("state = ?")
            params.append(RunState(state).value)
        if waiting:
            conditions.append(q.RUN_WAITS)
        rows = await self._fetch(
            f"SELECT {q.RUN_COLUMNS} FROM runs{q.where(conditions)} ORDER BY run_id DESC LIMIT ?",
            (*params, limit + 1),
        )
        runs = [q.run_from_row(row) for row in rows[:limit]]
        if len(rows) <= limit:
            return runs, ""
        return runs, q.encode_token([runs[-1].run_id])

    async def list_active_runs(self) -> list[RunRecord]:
        # The condition repeats the partial index's, so SQLite can use it.
        rows = await self._fetch(
            f"SELECT {q.RUN_COLUMNS} FROM runs WHERE state IN ('pending', 'running')"
            " ORDER BY created_at, run_id"
        )
        return [q.run_from_row(row) for row in rows]

    async def get_checkpoint(
        self, thread_id: str, checkpoint_ns: str = "", checkpoint_id: str | None = None
    ) -> CheckpointRecord | None:
        conditions = ["thread_id = ?", "checkpoint_ns = ?"]
        params: list[object] = [thread_id, checkpoint_ns]
        if checkpoint_id is not None:
            conditions.append("checkpoint_id = ?")
            params.append(checkpoint_id)
        records = await self._checkpoints(conditions, params, 1)
        return records[0] if records else None

    async def list_checkpoints(
        self,
        thread_id: str,
        checkpoint_ns: str = "",
        *,
        before: str | None = None,
        limit: int | None = None,
        metadata: dict[str, Json] | None = None,
    ) -> list[CheckpointRecord]:
        if limit is not None and limit <= 0:
            return []
        conditions, params = q.metadata_filter("metadata", metadata)
        conditions[:0] = ["thread_id = ?", "checkpoint_ns = ?"]
        params[:0] = [thread_id, checkpoint_ns]
        if before is not None:
            conditions.append("checkpoint_id < ?")
            params.append(before)
        return await self._checkpoints(conditions, params, limit)

    async def _checkpoints(
        self, conditions: list[str], params: list[object], limit: int | None
    ) -> list[CheckpointRecord]:
        sql = q.SELECT_CHECKPOINTS.format(
            where=q.where(conditions), limit="" if limit is None else " LIMIT ?"
        )
        rows = await self._fetch(sql, params if limit is None else (*params, limit))
        return q.checkpoints_from_rows(rows)

    async def get_writes(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str
    ) -> list[PendingWrite]:
        rows = await self._fetch(q.SELECT_WRITES, (thread_id, checkpoint_ns, checkpoint_id))
        return [q.write_from_row(row) for row in rows]

    async def read_events(
        self, run_id: str, after_event_id: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        sql = (
            "SELECT run_id, event_id, created_at, kind, payload FROM run_events"
            " WHERE run_id = ? AND event_id > ? ORDER BY event_id"
        )
        params: tuple[object, ...] = (run_id, after_event_id)
        if limit is not None:
            if limit <= 0:
                return []
            sql += " LIMIT ?"
            params = (*params, limit)
        return [q.event_from_row(row) for row in await self._fetch(sql, params)]

    async def last_event_id(self, run_id: str) -> int:
        rows = await self._fetch(
            "SELECT COALESCE(MAX(event_id), 0) FROM run_events WHERE run_id = ?", (run_id,)
        )
        return int(rows[0][0])

    async def known_targets(self) -> set[str]:
        return {row[0] for row in await self._fetch("SELECT name FROM targets")}

    async def known_graphs(self) -> dict[str, Json]:
        rows = await self._fetch("SELECT name, spec FROM graphs")
        return {row[0]: json.loads(row[1]) for row in rows}

    # --- LangGraph checkpoints ----------------------------------------------

    async def lg_list(
        self,
        *,
        thread_id: str | None,
        checkpoint_ns: str | None,
        checkpoint_id: str | None,
        metadata: dict[str, Json] | None,
        before: str | None,
        after: tuple[str, str, str] | None = None,
        limit: int,
        namespace: str | None = None,
    ) -> list[LgCheckpoint]:
        conditions, params = q.metadata_filter("metadata", metadata)
        conditions.insert(0, "body_type IS NOT NULL")
        if namespace is not None:
            conditions.append(q.IN_NAMESPACE)
            params.append(namespace)
        for column, value in (
            ("thread_id = ?", thread_id),
            ("checkpoint_ns = ?", checkpoint_ns),
            ("checkpoint_id = ?", checkpoint_id),
            ("checkpoint_id < ?", before),
        ):
            if value is not None:
                conditions.append(column)
                params.append(value)
        if after is not None:
            conditions.append(q.LG_AFTER)
            params.extend(after)
        sql = q.LG_SELECT_CHECKPOINTS.format(where=q.where(conditions))
        found = []
        for row in await self._fetch(sql, (*params, limit)):
            checkpoint = LgCheckpoint(
                thread_id=row[0],
                checkpoint_ns=row[1],
                checkpoint_id=row[2],
                parent_checkpoint_id=row[3],
                type=row[4],
                data=bytes(row[5]),
                metadata=row[6],
                channel_versions=json.loads(row[7]),
            )
            blobs = await self._fetch(q.LG_SELECT_BLOBS, (row[7], row[0], row[1]))
            checkpoint.blobs = [LgBlob(b[0], b[1], b[2], _bytes(b[3])) for b in blobs]
            writes = await self._fetch(q.LG_SELECT_WRITES, (row[0], row[1], row[2]))
            checkpoint.writes = [
                LgWrite(w[0], w[1], w[2], w[3], w[4], _bytes(w[5])) for w in writes
            ]
            found.append(checkpoint)
        return found

    async def lg_put(self, checkpoint: LgCheckpoint) -> None:
        c = checkpoint
        now = time.time()
        row = (
            c.thread_id,
            c.checkpoint_ns,
            c.checkpoint_id,
            c.parent_checkpoint_id,
            c.type,
            c.data,
            c.metadata,
            q.dumps(dict(c.channel_versions)),
            c.run_id,
            now,
        )
        blobs = [
            (c.thread_id, c.checkpoint_ns, b.channel, b.version, b.type, b.data) for b in c.blobs
        ]

        def apply(raw: sqlite3.Connection) -> object:
            raw.execute(q.LG_TOUCH_THREAD, (c.thread_id, now, now))
            raw.executemany(q.INSERT_BLOB, blobs)
            raw.execute(q.LG_UPSERT_CHECKPOINT, row)
            return None

        await self._submit(apply)

    async def lg_put_writes(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str, writes: Sequence[LgWrite]
    ) -> None:
        if not writes:
            return
        sql = q.UPSERT_WRITE if all(w.idx < 0 for w in writes) else q.INSERT_WRITE
        rows = [
            (
                thread_id,
                checkpoint_ns,
                checkpoint_id,
                w.task_id,
                w.idx,
                w.channel,
                w.type,
                w.data,
                w.task_path,
            )
            for w in writes
        ]

        def apply(raw: sqlite3.Connection) -> object:
            raw.executemany(sql, rows)
            return None

        await self._submit(apply)

    async def lg_delete_for_runs(
        self, run_ids: Sequence[str], *, namespace: str = DEFAULT_NAMESPACE
    ) -> None:
        ids = q.dumps(list(run_ids))

        def apply(raw: sqlite3.Connection) -> object:
            for sql in q.LG_DELETE_FOR_RUNS:
                raw.execute(sql, (ids, namespace))
            return None

        await self._submit(apply)

    async def lg_copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        now = time.time()
        thread_row, *statements = q.LG_COPY_THREAD

        def apply(raw: sqlite3.Connection) -> object:
            raw.execute(thread_row, (target_thread_id, now, now, source_thread_id))
            for sql in statements:
                raw.execute(sql, (target_thread_id, source_thread_id))
            return None

        await self._submit(apply)


def _bytes(blob: bytes | None) -> bytes | None:
    return None if blob is None else bytes(blob)


def _enable_wal(raw: sqlite3.Connection) -> str:
    """Switch to WAL. The switch needs a lock SQLite does not wait for with
    the busy timeout, so while another opener holds it (servers starting at
    once on one file) try again, within the same timeout."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return str(raw.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


def _configure_writer(raw: sqlite3.Connection) -> None:
    # NORMAL: a commit appends to the WAL and survives a crash of this
    # process; only a power loss may take the last commits back.
    raw.execute("PRAGMA synchronous = NORMAL")
    raw.execute("PRAGMA wal_autocheckpoint = 0")  # see _checkpoint


def _apply_group(
    raw: sqlite3.Connection, jobs: list[_Job], *, savepoints: bool
) -> list[tuple[Exception | None, object]]:
    """A group of jobs in one transaction on the writer connection: each
    job's (error, result), its writes undone when it failed. A lone job needs
    no savepoint: when it fails the transaction rolls back."""
    outcomes: list[tuple[Exception | None, object]] = []
    raw.execute("BEGIN IMMEDIATE")
    try:
        for job in jobs:
            if savepoints:
                raw.execute("SAVEPOINT job")
            try:
                result = job.apply(raw)
            except Exception as exc:
                if savepoints:
                    raw.execute("ROLLBACK TO job")
                    raw.execute("RELEASE job")
                outcomes.append((_as_store_error(exc), None))
                continue
            if savepoints:
                raw.execute("RELEASE job")
            outcomes.append((None, result))
        raw.execute("COMMIT" if savepoints or outcomes[0][0] is None else "ROLLBACK")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            raw.execute("ROLLBACK")
        raise
    return outcomes


def _apply_batch(raw: sqlite3.Connection, batch: q.EncodedBatch) -> object:
    if batch.claim_thread:
        row = raw.execute(leases.THREAD_STATUS, (batch.claim_thread,)).fetchone()
        if row is not None:
            leases.check_claim(batch.claim_thread, row[0], row[1], batch.claim_thread_at)
    lease = batch.lease
    fence = raw.execute(leases.FENCE, (lease.run_id,)).fetchone() if lease else None
    if lease is not None and fence is not None and int(fence[0]) != lease.token:
        raise LeaseLost(lease)
    for sql, rows in batch.steps:
        raw.executemany(sql, rows)
    if lease is not None and fence is None:  # the batch inserted the run
        raw.execute(leases.SET_LEASE, (lease.owner, lease.token, lease.run_id))
    for check in batch.blob_checks:
        missing = raw.execute(
            q.MISSING_BLOBS, (check.versions, check.thread_id, check.checkpoint_ns)
        ).fetchall()
        if missing:
            channels = sorted(row[0] for row in missing)
            raise StoreError(
                f"checkpoint {check.checkpoint_id!r} of thread {check.thread_id!r} sends no"
                f" value for channels {channels} and no earlier checkpoint stored them"
            )
    return None


# SQLite's primary result codes for conditions that pass (disk full, I/O,
# locks held too long, out of memory): the operation may be tried again.
_TRANSIENT_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)


def _as_store_error(exc: Exception) -> Exception:
    """Database errors reach callers as StoreError (StoreUnavailable when
    they pass, such as a full disk); our own errors as they are."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        transient = code is not None and code & 0xFF in _TRANSIENT_CODES
        wrapped = (StoreUnavailable if transient else StoreError)(f"sqlite: {exc}")
        wrapped.__cause__ = exc
        return wrapped
    return exc


def _column(raw: sqlite3.Connection, sql: str, params: Sequence[object]) -> set[Any]:
    return {row[0] for row in raw.execute(sql, params).fetchall()}


def _check_limit(limit: int) -> None:
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
