"""The Postgres store, on asyncpg.

Writes work as in the SQLite store: a background task drains a queue of jobs
(batches, thread creation and deletion, retention) and applies every job
queued at that moment in one transaction (group commit), each inside its own
savepoint, so a failing job is rolled back and reported to its caller alone
while the others commit. The writer borrows a connection from the pool per
group, so a connection lost between groups costs nothing but that group.
Reads go to the pool and see the last committed state.

Several servers may share one database: migrations are applied by the first
one that takes the migration lock, and the others find them applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

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
from cairn_server.store import _postgres_batch as pgb
from cairn_server.store import _postgres_sql as pg
from cairn_server.store import _sqlite_sql as codec
from cairn_server.store import leases
from cairn_server.store._retention import check_keep_latest, prune_result, unique_ids
from cairn_server.store.base import (
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

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    _Conn: TypeAlias = asyncpg.Connection[Any] | PoolConnectionProxy[Any]
else:
    _Conn = Any

_Apply = Callable[[_Conn], Awaitable[object]]
T = TypeVar("T")

# Query parameters of the store URL that size the pool; asyncpg would take any
# other parameter for a server setting (e.g. ?search_path=cairn).
_POOL_MIN = "pool_min_size"
_POOL_MAX = "pool_max_size"


# A lost connection (the server restarting, a failover) is retried with a
# doubling pause up to _RETRY_MAX for this long before callers see an error.
_OUTAGE_SECONDS = 30.0
_RETRY_FIRST, _RETRY_MAX = 0.05, 1.0


def _retry_pauses() -> Iterator[float]:
    """Pauses between attempts while within the outage window; ends after it."""
    deadline = time.monotonic() + _OUTAGE_SECONDS
    pause = _RETRY_FIRST
    while time.monotonic() + pause < deadline:
        yield pause
        pause = min(pause * 2, _RETRY_MAX)


# The connection, not the statement, failed: nothing was committed.
_DISCONNECTS = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.CrashShutdownError,
    asyncpg.InterfaceError,
    OSError,
)


class _Disconnected(Exception):
    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error if isinstance(error, Exception) else Exception(str(error))


@dataclass(slots=True)
class _Job:
    apply: _Apply
    future: asyncio.Future[object]
    shared_locks: list[str] = field(default_factory=list)
    """Threads to lock shared for the whole group (see pg.LOCK_THREADS_SHARED)."""
    fenced_run: str = ""
    claimed_thread: str = ""
    """The run and thread rows the job locks; the group locks them all first,
    in id order, so that two replicas' groups cannot deadlock."""
    batch: pgb.EncodedJob | None = None
    """A WriteBatch's job: a group of only those is one statement."""


class PostgresStore(LeaseQueries, Store):
    """A Store in a Postgres database.

    Example::

        store = PostgresStore.from_url("postgresql://cairn@127.0.0.1:5432/cairn")
        await store.open()
        try:
            await store.commit(WriteBatch(targets=["checkout"]))
        finally:
            await store.close()
    """

    _row_lock = "FOR UPDATE SKIP LOCKED"

    def __init__(
        self, dsn: str, *, min_size: int = 1, max_size: int = 10, metrics: Metrics | None = None
    ) -> None:
        self._dsn = dsn
        self.metrics = metrics if metrics is not None else Metrics()
        """Commit latency, group sizes, errors and fencing rejections."""
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._writer_conn: PoolConnectionProxy[Any] | None = None
        self._queue: asyncio.Queue[_Job | None] | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._closing = False

    @classmethod
    def from_url(cls, url: str, *, metrics: Metrics | None = None) -> PostgresStore:
        """`postgresql://user:password@host:port/dbname?search_path=schema`;
        `pool_min_size` and `pool_max_size` size the connection pool (1, 10)."""
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres") or not parts.netloc:
            raise ValueError(f"not a postgres URL: {url!r}; expected postgresql://host/dbname")
        query = parse_qsl(parts.query, keep_blank_values=True)
        sizes = {_POOL_MIN: 1, _POOL_MAX: 10}
        rest = []
        for key, value in query:
            if key in sizes:
                try:
                    sizes[key] = int(value)
                except ValueError:
                    raise ValueError(f"{key} must be an integer in {url!r}") from None
            else:
                rest.append((key, value))
        if not 0 <= sizes[_POOL_MIN] <= sizes[_POOL_MAX] or sizes[_POOL_MAX] < 1:
            raise ValueError(f"need 0 <= {_POOL_MIN} <= {_POOL_MAX} and {_POOL_MAX} >= 1")
        dsn = urlunsplit(parts._replace(query=urlencode(rest)))
        return cls(dsn, min_size=sizes[_POOL_MIN], max_size=sizes[_POOL_MAX], metrics=metrics)

    # --- lifecycle --------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None or self._closing:
            raise StoreError("store already opened")
        try:
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                reset=_nothing_to_reset,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"cannot connect to postgres: {exc}") from exc
        self._pool = pool
        try:
            await self._migrate(pool)
        except BaseException:
            self._pool = None
            await pool.close()
            raise
        self._queue = asyncio.Queue()
        self._writer_task = asyncio.create_task(self._write_loop(self._queue))

    async def close(self) -> None:
        """Apply every batch already submitted, then disconnect."""
        if self._closing:
            return
        self._closing = True
        if self._queue is not None and self._writer_task is not None:
            self._queue.put_nowait(None)
            await self._writer_task
        pool, self._pool = self._pool, None
        if pool is not None:
            await self._drop_writer_conn(pool)
            await pool.close()

    async def _migrate(self, pool: asyncpg.Pool) -> None:
        """Apply the pending numbered migrations in one transaction, under a
        lock that makes concurrent openers wait for the first one."""
        migrations = codec.load_migrations("postgres")
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(pg.MIGRATION_LOCK)
            await conn.execute(pg.CREATE_MIGRATIONS_TABLE)
            applied = {
                row[0]: row[1]
                for row in await conn.fetch("SELECT version, name FROM schema_migrations")
            }
            known = {m.version: m.name for m in migrations}
            for version, name in applied.items():
                if version not in known:
                    raise StoreError(
                        f"the database has migration {version} ({name}) that this server"
                        " does not know; it was written by a newer version"
                    )
                if known[version] != name:
                    raise StoreError(
                        f"migration {version} is {known[version]} here but {name} in the"
                        " database; migrations must never be renumbered"
                    )
            for migration in migrations:
                if migration.version in applied:
                    continue
                log.info("applying postgres migration %s", migration.name)
                for statement in migration.statements:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    time.time(),
                )

    # --- the writer ---------------------------------------------------------

    def _enqueue(self, apply: _Apply, **locks: Any) -> asyncio.Future[object]:
        if self._closing or self._queue is None:
            raise StoreError("store is not open")
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(apply, future, **locks))
        return future

    async def _submit(self, apply: _Apply) -> object:
        # A cancelled caller does not withdraw its job: it was submitted, so it
        # is applied in order all the same.
        return await asyncio.shield(self._enqueue(apply))

    async def _write_loop(self, queue: asyncio.Queue[_Job | None]) -> None:
        stop = False
        while not stop:
            item = await queue.get()
            jobs: list[_Job] = []
            while True:
                if item is None:
                    stop = True
                else:
                    jobs.append(item)
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
            if jobs:
                await self._write_group(jobs)

    @contextlib.asynccontextmanager
    async def _writer(self) -> AsyncIterator[_Conn]:
        """The writer loop's connection, kept from one group to the next: an
        acquire and a release from the pool cost a twentieth of a step's
        commit. A group that fails on it gives it back to the pool (which
        rolls back what it left open, or replaces it when it is broken)."""
        pool = self._pool
        assert pool is not None
        if self._writer_conn is None:
            self._writer_conn = await pool.acquire()
        try:
            yield self._writer_conn
        except BaseException:
            await self._drop_writer_conn(pool)
            raise

    async def _drop_writer_conn(self, pool: asyncpg.Pool) -> None:
        conn, self._writer_conn = self._writer_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await pool.release(conn)

    async def _write_group(self, jobs: list[_Job]) -> None:
        """Apply `jobs` in one transaction, one savepoint each, then resolve
        them. A connection lost before the commit was sent rolled everything
        back, so the group is tried again on another connection."""
        outcomes: list[tuple[_Job, Exception | None, object]] = []
        pauses = _retry_pauses()
        while True:
            start = time.perf_counter()
            try:
                outcomes = await self._try_group(jobs)
                self.metrics.store_commit.observe(time.perf_counter() - start)
                self.metrics.store_group_size.observe(len(jobs))
                break
            except _Disconnected as lost:
                pause = next(pauses, None)
                if pause is not None:
                    log.warning("postgres connection lost (%s); retrying the group", lost)
                    await asyncio.sleep(pause)
                    continue
                failure: Exception = _as_store_error(lost.error)
            except Exception as exc:
                failure = _as_store_error(exc)
            log.error("postgres group commit of %d jobs failed: %s", len(jobs), failure)
            leases.count_failure(self.metrics, failure, len(jobs))
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(failure)
            return
        for job, error, result in outcomes:
            if job.future.done():
                continue
            if error is not None:
                leases.count_failure(self.metrics, error)
                job.future.set_exception(error)
            else:
                job.future.set_result(result)

    async def _try_group(self, jobs: list[_Job]) -> list[tuple[_Job, Exception | None, object]]:
        batches = [job.batch for job in jobs if job.batch is not None]
        if len(batches) == len(jobs):
            return await self._try_batches(jobs, batches)
        # A lone job needs no savepoint: when it fails the transaction rolls back.
        savepoints = len(jobs) > 1
        outcomes: list[tuple[_Job, Exception | None, object]] = []
        locks = sorted({thread for job in jobs for thread in job.shared_locks})
        committing = False
        try:
            async with self._writer() as conn:
                transaction = conn.transaction()
                try:
                    await transaction.start()
                    if locks:
                        await conn.execute(pg.LOCK_THREADS_SHARED, locks)
                    await _lock_rows(conn, jobs)
                    for job in jobs:
                        error, result = await _apply_job(conn, job, savepoint=savepoints)
                        outcomes.append((job, error, result))
                except BaseException:
                    with contextlib.suppress(Exception):
                        await transaction.rollback()
                    raise
                committing = True
                if savepoints or outcomes[0][1] is None:
                    await transaction.commit()
                else:
                    await transaction.rollback()
        except _DISCONNECTS as exc:
            if committing:
                raise  # the commit may or may not have happened: no retry
            raise _Disconnected(exc) from exc
        return outcomes

    async def _try_batches(
        self, jobs: list[_Job], batches: list[pgb.EncodedJob]
    ) -> list[tuple[_Job, Exception | None, object]]:
        """A group of WriteBatches: one statement, so one round trip and one
        transaction (cairn_apply_batches, migration 0014)."""
        document, blobs = pgb.group(batches)
        try:
            async with self._writer() as conn:
                outcomes = json.loads(await conn.fetchval(pgb.APPLY, document, blobs))
        except _DISCONNECTS as exc:
            # Applied or not (a connection found dead as the statement went,
            # or lost while it ran): tried again when that changes nothing.
            if all(batch.replayable for batch in batches):
                raise _Disconnected(exc) from exc
            raise
        return [
            (job, pgb.refusal(outcome, batch), None)
            for job, batch, outcome in zip(jobs, batches, outcomes, strict=True)
        ]

    # --- writes -------------------------------------------------------------

    def submit(self, batch: WriteBatch) -> asyncio.Future[object]:
        # Encoding first: a value that is not JSON fails here, with nothing queued.
        encoded = pgb.encode(batch)

        async def apply(conn: _Conn) -> object:
            """In a group with other kinds of jobs: the batch alone."""
            document, blobs = pgb.group([encoded])
            [outcome] = json.loads(await conn.fetchval(pgb.APPLY, document, blobs))
            error = pgb.refusal(outcome, encoded)
            if error is not None:
                raise error
            return None

        return self._enqueue(
            apply,
            shared_locks=encoded.shared_locks,
            fenced_run=batch.lease.run_id if batch.lease else "",
            claimed_thread=batch.claim_thread,
            batch=encoded,
        )

    async def create_thread(self, thread: ThreadRecord) -> None:
        params = pg.thread_params(thread)

        async def apply(conn: _Conn) -> object:
            status = await conn.execute(pg.INSERT_THREAD, *params)
            if _rowcount(status) == 0:
                raise ThreadAlreadyExists(thread.thread_id)
            return None

        await self._submit(apply)

    async def delete_thread(self, thread_id: str) -> bool:
        async def apply(conn: _Conn) -> object:
            for sql in pg.DELETE_THREADS[:-1]:
                await conn.execute(sql, [thread_id])
            return _rowcount(await conn.execute(pg.DELETE_THREADS[-1], [thread_id])) > 0

        return bool(await self._submit(apply))

    async def delete_run(self, thread_id: str, run_id: str) -> None:
        async def apply(conn: _Conn) -> object:
            await conn.execute(pg.LOCK_THREADS, [thread_id])  # as a prune: see LOCK_THREADS
            for sql in pg.DELETE_RUN:
                await conn.execute(sql, thread_id, run_id)
            await conn.execute(pg.PRUNE_BLOBS, [thread_id])
            return None

        await self._submit(apply)

    # --- retention ----------------------------------------------------------

    async def prune_checkpoints(
        self, thread_ids: Sequence[str], *, keep_latest: int
    ) -> PruneResult:
        ids = unique_ids(thread_ids)
        check_keep_latest(keep_latest)

        async def apply(conn: _Conn) -> object:
            await conn.execute(pg.LOCK_THREADS, ids)
            existing = {row[0] for row in await conn.fetch(pg.EXISTING_THREADS, ids)}
            deleted = _rowcount(await conn.execute(pg.PRUNE_CHECKPOINTS, ids, keep_latest))
            await conn.execute(pg.PRUNE_BLOBS, ids)
            return PruneResult([i for i in ids if i in existing], deleted)

        return prune_result(await self._submit(apply))

    async def delete_threads(
        self, thread_ids: Sequence[str], *, updated_before: float | None = None
    ) -> PruneResult:
        ids = unique_ids(thread_ids)

        async def apply(conn: _Conn) -> object:
            if updated_before is None:
                existing = {row[0] for row in await conn.fetch(pg.EXISTING_THREADS, ids)}
                doomed = ids
            else:
                rows = await conn.fetch(pg.EXPIRED_AMONG, ids, float(updated_before))
                existing = {row[0] for row in rows}
                doomed = sorted(existing)
            counted = await conn.fetchval(pg.COUNT_CHECKPOINTS, doomed)
            for sql in pg.DELETE_THREADS:
                await conn.execute(sql, doomed)
            return PruneResult([i for i in ids if i in existing], int(counted))

        return prune_result(await self._submit(apply))

    async def expired_threads(self, updated_before: float, *, limit: int) -> list[str]:
        _check_limit(limit)
        rows = await self._fetch(pg.EXPIRED_THREADS, float(updated_before), limit)
        return [row[0] for row in rows]

    # --- the connections, for the memory store (cairn_server/memory) ----------

    async def call_reader(self, fn: Callable[[_Conn], Awaitable[T]]) -> T:
        """`await fn(connection)` on a pooled connection, in a read-only
        repeatable-read transaction: every statement of `fn` sees one
        snapshot. Tried again after a lost connection, so `fn` must only
        read. Database errors reach the caller as StoreError."""

        async def in_snapshot(pool: asyncpg.Pool) -> T:
            async with (
                pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                return await fn(conn)

        return await self._read(in_snapshot)

    async def call_writer(self, fn: Callable[[_Conn], Awaitable[T]]) -> T:
        """`await fn(connection)` as a job of the writer, in the group commit
        of the store's own writes: its statements commit together, or not at
        all when it raises."""
        return cast(T, await self._submit(fn))

    # --- reads --------------------------------------------------------------

    async def _fetch(self, sql: str, *params: object) -> list[asyncpg.Record]:
        return list(await self._read(lambda pool: pool.fetch(sql, *params)))

    async def _read(self, read: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
        """`await read(pool)`, tried again after a lost connection (so it
        must only read); database errors raised as StoreError."""
        pool = self._pool
        if pool is None:
            raise StoreError("store is not open")
        pauses = _retry_pauses()
        while True:
            try:
                return await read(pool)
            except _DISCONNECTS as exc:
                pause = next(pauses, None)
                if pause is None:
                    raise _as_store_error(exc) from exc
                await asyncio.sleep(pause)
            except asyncpg.PostgresError as exc:
                raise _as_store_error(exc) from exc

    async def _lease_rows(self, sql: str, params: Sequence[object], *, write: bool) -> list[Any]:
        # Not through the write queue: a lease must not wait behind a busy
        # replica's commits, and none of these need their order.
        return list(await self._fetch(pg.numbered(sql), *params))

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        rows = await self._fetch(
            f"SELECT {pg.THREAD_COLUMNS} FROM threads WHERE thread_id = $1", thread_id
        )
        return codec.thread_from_row(rows[0]) if rows else None

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
        conditions, params = pg.metadata_filter("metadata", metadata, 2)
        conditions.insert(0, "namespace = $1")
        params.insert(0, namespace)
        if page_token:
            created_at, thread_id = codec.decode_token(page_token, 2)
            if not isinstance(created_at, int | float) or not isinstance(thread_id, str):
                raise ValueError(f"invalid page token {page_token!r}")
            n = len(params) + 1
            conditions.append(f"(created_at, thread_id) < (${n}, ${n + 1})")
            params.extend((float(created_at), thread_id))
        if status is not None:
            params.append(ThreadStatus(status).value)
            conditions.append(f"status = ${len(params)}")
        params.append(limit + 1)
        rows = await self._fetch(
            f"SELECT {pg.THREAD_COLUMNS} FROM threads{codec.where(conditions)}"
            f" ORDER BY created_at DESC, thread_id DESC LIMIT ${len(params)}",
            *params,
        )
        threads = [codec.thread_from_row(row) for row in rows[:limit]]
        if len(rows) <= limit:
            return threads, ""
        last = threads[-1]
        return threads, codec.encode_token([last.created_at, last.thread_id])

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._fetch(f"SELECT {pg.RUN_COLUMNS} FROM runs WHERE run_id = $1", run_id)
        return codec.run_from_row(rows[0]) if rows else None

    async def find_run_by_request_id(self, thread_id: str, request_id: str) -> RunRecord | None:
        if not request_id:
            return None
        rows = await self._fetch(
            # `request_id <> ''` lets Postgres use the partial unique index.
            f"SELECT {pg.RUN_COLUMNS} FROM runs"
            " WHERE thread_id = $1 AND request_id = $2 AND request_id <> ''",
            thread_id,
            request_id,
        )
        return codec.run_from_row(rows[0]) if rows else None

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
            conditions, params = [f"{pg.RUN_NAMESPACE} = $1"], [namespace]
        else:
            conditions, params = ["thread_id = $1"], [thread_id]
        if page_token:
            (after,) = codec.decode_token(page_token, 1)
            if not isinstance(after, str):
                raise ValueError(f"invalid page token {page_token!r}")
            params.append(after)
            conditions.append(f"run_id < ${len(params)}")
        if state is not None:
            params.append(RunState(state).value)
            conditions.append(f"state = ${len(params)}")
        if waiting:
            conditions.append(pg.RUN_WAITS)
        params.append(limit + 1)
        rows = await self._fetch(
            f"SELECT {pg.RUN_COLUMNS} FROM runs{codec.where(conditions)}"
            f" ORDER BY run_id DESC LIMIT ${len(params)}",
            *params,
        )
        runs = [codec.run_from_row(row) for row in rows[:limit]]
        if len(rows) <= limit:
            return runs, ""
        return runs, codec.encode_token([runs[-1].run_id])

    async def list_active_runs(self) -> list[RunRecord]:
        # The condition repeats the partial index's, so Postgres can use it.
        rows = await self._fetch(
            f"SELECT {pg.RUN_COLUMNS} FROM runs WHERE state IN ('pending', 'running')"
            " ORDER BY created_at, run_id"
        )
        return [codec.run_from_row(row) for row in rows]

    async def get_checkpoint(
        self, thread_id: str, checkpoint_ns: str = "", checkpoint_id: str | None = None
    ) -> CheckpointRecord | None:
        conditions = ["thread_id = $1", "checkpoint_ns = $2"]
        params: list[object] = [thread_id, checkpoint_ns]
        if checkpoint_id is not None:
            conditions.append("checkpoint_id = $3")
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
        conditions = ["thread_id = $1", "checkpoint_ns = $2"]
        params: list[object] = [thread_id, checkpoint_ns]
        if before is not None:
            params.append(before)
            conditions.append(f"checkpoint_id < ${len(params)}")
        more, more_params = pg.metadata_filter("metadata", metadata, len(params) + 1)
        conditions.extend(more)
        params.extend(more_params)
        return await self._checkpoints(conditions, params, limit)

    async def _checkpoints(
        self, conditions: list[str], params: list[object], limit: int | None
    ) -> list[CheckpointRecord]:
        if limit is not None:
            params = [*params, limit]
        sql = pg.SELECT_CHECKPOINTS.format(
            where=codec.where(conditions), limit="" if limit is None else f" LIMIT ${len(params)}"
        )
        return codec.checkpoints_from_rows(await self._fetch(sql, *params))

    async def get_writes(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str
    ) -> list[PendingWrite]:
        rows = await self._fetch(pg.SELECT_WRITES, thread_id, checkpoint_ns, checkpoint_id)
        return [codec.write_from_row(row) for row in rows]

    async def read_events(
        self, run_id: str, after_event_id: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        sql = (
            "SELECT run_id, event_id, created_at, kind, payload FROM run_events"
            " WHERE run_id = $1 AND event_id > $2 ORDER BY event_id"
        )
        params: tuple[object, ...] = (run_id, after_event_id)
        if limit is not None:
            if limit <= 0:
                return []
            sql += " LIMIT $3"
            params = (*params, limit)
        return [codec.event_from_row(row) for row in await self._fetch(sql, *params)]

    async def last_event_id(self, run_id: str) -> int:
        rows = await self._fetch(
            "SELECT COALESCE(MAX(event_id), 0) FROM run_events WHERE run_id = $1", run_id
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
        conditions = ["body_type IS NOT NULL"]
        params: list[object] = []
        if namespace is not None:
            params.append(namespace)
            conditions.append(pg.IN_NAMESPACE.format(len(params)))
        for column, value in (
            ("thread_id", thread_id),
            ("checkpoint_ns", checkpoint_ns),
            ("checkpoint_id", checkpoint_id),
        ):
            if value is not None:
                params.append(value)
                conditions.append(f"{column} = ${len(params)}")
        if before is not None:
            params.append(before)
            conditions.append(f"checkpoint_id < ${len(params)}")
        if after is not None:
            conditions.append(pg.LG_AFTER.format(*range(len(params) + 1, len(params) + 4)))
            params.extend(after)
        more, more_params = pg.metadata_filter("metadata", metadata, len(params) + 1)
        conditions.extend(more)
        params.extend(more_params)
        params.append(limit)
        sql = pg.LG_SELECT_CHECKPOINTS.format(where=codec.where(conditions), limit=len(params))
        found = []
        for row in await self._fetch(sql, *params):
            checkpoint = LgCheckpoint(
                thread_id=row[0],
                checkpoint_ns=row[1],
                checkpoint_id=row[2],
                parent_checkpoint_id=row[3],
                type=row[4],
                data=row[5],
                metadata=row[6],
                channel_versions=json.loads(row[7]),
            )
            blobs = await self._fetch(pg.LG_SELECT_BLOBS, row[7], row[0], row[1])
            checkpoint.blobs = [LgBlob(b[0], b[1], b[2], b[3]) for b in blobs]
            writes = await self._fetch(pg.LG_SELECT_WRITES, row[0], row[1], row[2])
            checkpoint.writes = [LgWrite(w[0], w[1], w[2], w[3], w[4], w[5]) for w in writes]
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
            pg.jsonb_text(c.metadata, "checkpoint metadata"),
            pg.jsonb(dict(c.channel_versions), "channel versions"),
            c.run_id,
            now,
        )
        blobs = [
            (c.thread_id, c.checkpoint_ns, b.channel, b.version, b.type, b.data) for b in c.blobs
        ]

        async def apply(conn: _Conn) -> object:
            await conn.execute(pg.LG_TOUCH_THREAD, c.thread_id, now)
            if blobs:
                await conn.executemany(pg.INSERT_BLOB, blobs)
            await conn.execute(pg.LG_UPSERT_CHECKPOINT, *row)
            return None

        # Shared with group commits, exclusive for prunes: a checkpoint that
        # points at earlier values never interleaves with a prune of them.
        await asyncio.shield(self._enqueue(apply, shared_locks=[c.thread_id]))

    async def lg_put_writes(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str, writes: Sequence[LgWrite]
    ) -> None:
        if not writes:
            return
        sql = pg.UPSERT_WRITE if all(w.idx < 0 for w in writes) else pg.INSERT_WRITE
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

        async def apply(conn: _Conn) -> object:
            await conn.executemany(sql, rows)
            return None

        await self._submit(apply)

    async def lg_delete_for_runs(
        self, run_ids: Sequence[str], *, namespace: str = DEFAULT_NAMESPACE
    ) -> None:
        ids = list(run_ids)

        async def apply(conn: _Conn) -> object:
            for sql in pg.LG_DELETE_FOR_RUNS:
                await conn.execute(sql, ids, namespace)
            return None

        await self._submit(apply)

    async def lg_copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        now = time.time()
        thread_row, *statements = pg.LG_COPY_THREAD

        async def apply(conn: _Conn) -> object:
            await conn.execute(thread_row, target_thread_id, source_thread_id, now)
            for sql in statements:
                await conn.execute(sql, target_thread_id, source_thread_id)
            return None

        await asyncio.shield(
            self._enqueue(apply, shared_locks=[source_thread_id, target_thread_id])
        )


async def _nothing_to_reset(conn: asyncpg.Connection) -> None:
    """A connection given back to the pool keeps its session as it is. The
    store leaves no session state (no session advisory locks, LISTENs,
    cursors or SETs; its locks are transaction-scoped), and asyncpg's default
    reset costs a round trip on every release: a fifth of a step's commit.
    asyncpg still rolls back a transaction left open before calling this."""


async def _apply_job(conn: _Conn, job: _Job, *, savepoint: bool) -> tuple[Exception | None, object]:
    """Run one job; (error, None) when it failed and its writes were undone."""
    if not savepoint:
        try:
            return None, await job.apply(conn)
        except _DISCONNECTS:
            raise
        except Exception as exc:
            return _as_store_error(exc), None
    nested = conn.transaction()
    await nested.start()
    try:
        result = await job.apply(conn)
    except _DISCONNECTS:
        raise
    except Exception as exc:
        await nested.rollback()
        return _as_store_error(exc), None
    await nested.commit()
    return None, result


async def _lock_rows(conn: _Conn, jobs: list[_Job]) -> None:
    threads = sorted({job.claimed_thread for job in jobs if job.claimed_thread})
    runs = sorted({job.fenced_run for job in jobs if job.fenced_run})
    if len(threads) + len(runs) < 2:
        return  # one row has no order: the job's own FOR UPDATE locks it (one round trip less)
    if threads:
        await conn.execute(pg.LOCK_THREAD_ROWS, threads)
    if runs:
        await conn.execute(pg.LOCK_RUN_ROWS, runs)


def _rowcount(status: str) -> int:
    """The row count of a command status such as 'INSERT 0 1' or 'DELETE 3'."""
    return int(status.rsplit(" ", 1)[-1])


def _as_store_error(exc: Exception) -> Exception:
    """Database and connection errors reach callers as StoreError; our own
    errors as they are."""
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError | OSError):
        # Lost connections and class 53 (disk full, out of memory or
        # connections) pass: callers may try again.
        transient = isinstance(exc, (*_DISCONNECTS, asyncpg.InsufficientResourcesError))
        wrapped = (StoreUnavailable if transient else StoreError)(f"postgres: {exc}")
        wrapped.__cause__ = exc
        return wrapped
    return exc


def _check_limit(limit: int) -> None:
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
