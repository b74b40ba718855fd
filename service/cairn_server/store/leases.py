"""Run leases and the replicas that hold them (DESIGN.md section 7).

Each replica renews a row in `replicas` while it lives. Each active run names
its owner and a fencing token; the owner attaches its `Lease` to every batch it
commits, and the store applies the batch only while the run still carries that
token. Taking a run over bumps the token, so a replica that lost a run (paused
past its lease, cut off from the database) cannot write to it again.

The queries are written once with `?` placeholders; each backend runs them
through `_lease_rows`, which applies writes in order with its other commits.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any

from cairn_server.domain import RunRecord, ThreadStatus
from cairn_server.metrics import Metrics
from cairn_server.store import _sqlite_sql as codec
from cairn_server.store.base import (
    Lease,
    LeaseLost,
    StoreError,
    StoreUnavailable,
    ThreadAlreadyExists,
    ThreadBusy,
    ThreadChanged,
)

STOP_CANCEL = "cancel"

_ACTIVE = "state IN ('pending', 'running')"
_SLEEPS = "wake_at IS NOT NULL"
"""A sleeping run (WriteBatch.sleeps): the condition of runs_wake_idx."""

UPSERT_REPLICA = """
INSERT INTO replicas (replica_id, address, started_at, expires_at) VALUES (?, ?, ?, ?)
ON CONFLICT (replica_id) DO UPDATE SET address = excluded.address, expires_at = excluded.expires_at
"""

DELETE_REPLICA = "DELETE FROM replicas WHERE replica_id = ?"
LIVE_REPLICAS = "SELECT replica_id, address FROM replicas WHERE expires_at >= ? ORDER BY replica_id"
FORGET_REPLICAS = "DELETE FROM replicas"

# Active runs owned by `?` (when taking back one's own runs at start; '' else)
# or by another replica without a live row: a replica never claims the runs it
# drives, even when its own row lapsed while the database was away. Replicas
# claim concurrently: the owner test is on the updated row, so a run another
# replica took is skipped. `{lock}` is the backend's row lock clause: Postgres
# skips the rows another replica is claiming or writing instead of waiting on
# them (and deadlocking).
CLAIM_RUNS = f"""
UPDATE runs SET owner_id = ?, lease_token = lease_token + 1
WHERE run_id IN (
    SELECT run_id FROM runs
    WHERE {_ACTIVE} AND wake_at IS NULL AND (owner_id = ? OR (owner_id <> ? AND owner_id NOT IN
        (SELECT replica_id FROM replicas WHERE expires_at >= ?)))
    ORDER BY run_id {{lock}})
RETURNING {codec.RUN_COLUMNS}, lease_token
"""

# Sleeping runs are nobody's (WriteBatch.sleeps): claimed once due by any
# replica, one replica each (the conditions are checked again on the row
# being updated, after the lock).
CLAIM_DUE_RUNS = f"""
UPDATE runs SET owner_id = ?, lease_token = lease_token + 1, wake_at = NULL
WHERE {_SLEEPS} AND wake_at <= ? AND run_id IN (
    SELECT run_id FROM runs WHERE {_SLEEPS} AND wake_at <= ? AND {_ACTIVE}
    ORDER BY wake_at, run_id LIMIT ? {{lock}})
RETURNING {codec.RUN_COLUMNS}, lease_token
"""

NEXT_WAKE_TIME = (
    f"SELECT MIN(wake_at) FROM runs WHERE {_SLEEPS} AND state IN ('pending', 'running',"
    " 'interrupted')"
)

# Interrupted runs whose interrupts time out: the timer moves to a retry
# time, so that the replica that took it answers them (a run start on the
# thread clears it) or, if it cannot, another does later.
CLAIM_DUE_INTERRUPTS = f"""
UPDATE runs SET wake_at = ?
WHERE {_SLEEPS} AND wake_at <= ? AND run_id IN (
    SELECT run_id FROM runs WHERE {_SLEEPS} AND wake_at <= ? AND state = 'interrupted'
    ORDER BY wake_at, run_id LIMIT ? {{lock}})
RETURNING {codec.RUN_COLUMNS}
"""

CLEAR_TIMER = "UPDATE runs SET wake_at = NULL WHERE run_id = ?"

CLAIM_SLEEPING_RUN = f"""
UPDATE runs SET owner_id = ?, lease_token = lease_token + 1, wake_at = NULL
WHERE run_id = ? AND {_SLEEPS} AND {_ACTIVE}
RETURNING lease_token
"""

# Given up (graceful shutdown): any replica may claim them at once.
RELEASE_RUNS = f"""
UPDATE runs SET owner_id = '', lease_token = lease_token + 1
WHERE owner_id = ? AND {_ACTIVE}
RETURNING run_id
"""

OWNED_RUNS = f"SELECT run_id, lease_token FROM runs WHERE owner_id = ? AND {_ACTIVE}"

REQUEST_STOP = f"UPDATE runs SET stop_request = ? WHERE run_id = ? AND {_ACTIVE} RETURNING run_id"

STOP_REQUESTS = (
    f"SELECT run_id, stop_request FROM runs WHERE owner_id = ? AND stop_request <> '' AND {_ACTIVE}"
)

# Inside a batch's transaction: the run's current token (Postgres locks the row
# until the commit, so a takeover waits for the batch).
FENCE = "SELECT lease_token FROM runs WHERE run_id = ?"
SET_LEASE = "UPDATE runs SET owner_id = ?, lease_token = ? WHERE run_id = ?"
# Inside a run start's transaction: the thread's status, locked likewise.
THREAD_STATUS = "SELECT status, updated_at FROM threads WHERE thread_id = ?"


def check_claim(thread_id: str, status: str, updated_at: float, expected: float | None) -> None:
    """A run start's claim on its thread (WriteBatch.claim_thread): refused
    while another run holds it, or once it changed since the start read it."""
    if status == ThreadStatus.BUSY.value:
        raise ThreadBusy(thread_id)
    if expected is not None and float(updated_at) != expected:
        raise ThreadChanged(thread_id)


class LeaseQueries(abc.ABC):
    """The Store's lease methods (documented there), for any backend that
    runs `?` queries."""

    _row_lock = ""
    """The lock clause of CLAIM_RUNS's row selection."""

    @abc.abstractmethod
    async def _lease_rows(self, sql: str, params: Sequence[object], *, write: bool) -> list[Any]:
        """Run one statement; writes go through the ordered commit queue."""

    async def renew_replica(
        self, replica_id: str, *, address: str, now: float, expires_at: float
    ) -> None:
        await self._lease_rows(UPSERT_REPLICA, (replica_id, address, now, expires_at), write=True)

    async def remove_replica(self, replica_id: str) -> None:
        await self._lease_rows(DELETE_REPLICA, (replica_id,), write=True)

    async def live_replicas(self, now: float) -> dict[str, str]:
        rows = await self._lease_rows(LIVE_REPLICAS, (now,), write=False)
        return {str(row[0]): str(row[1]) for row in rows}

    async def claim_runs(
        self, replica_id: str, *, now: float, own: bool
    ) -> list[tuple[RunRecord, Lease]]:
        rows = await self._lease_rows(
            CLAIM_RUNS.format(lock=self._row_lock),
            (replica_id, replica_id if own else "", replica_id, now),
            write=True,
        )
        return self._claimed(rows, replica_id, key=lambda run: (run.created_at, run.run_id))

    @staticmethod
    def _claimed(
        rows: list[Any], replica_id: str, *, key: Callable[[RunRecord], Any]
    ) -> list[tuple[RunRecord, Lease]]:
        """Claimed rows (run columns, then the new token) as runs with their
        leases, sorted by `key` (RETURNING keeps no order)."""
        claimed = []
        for row in rows:
            run = codec.run_from_row(row)
            claimed.append((run, Lease(run.run_id, replica_id, int(str(row[-1])))))
        claimed.sort(key=lambda pair: key(pair[0]))
        return claimed

    async def claim_due_runs(
        self, replica_id: str, *, now: float, limit: int
    ) -> list[tuple[RunRecord, Lease]]:
        rows = await self._lease_rows(
            CLAIM_DUE_RUNS.format(lock=self._row_lock),
            (replica_id, now, now, limit),
            write=True,
        )
        return self._claimed(rows, replica_id, key=lambda run: run.run_id)

    async def claim_due_interrupts(
        self, *, now: float, retry_at: float, limit: int
    ) -> list[RunRecord]:
        rows = await self._lease_rows(
            CLAIM_DUE_INTERRUPTS.format(lock=self._row_lock),
            (retry_at, now, now, limit),
            write=True,
        )
        return sorted((codec.run_from_row(row) for row in rows), key=lambda r: r.run_id)

    async def clear_timer(self, run_id: str) -> None:
        await self._lease_rows(CLEAR_TIMER, (run_id,), write=True)

    async def next_wake_time(self) -> float | None:
        rows = await self._lease_rows(NEXT_WAKE_TIME, (), write=False)
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    async def claim_sleeping_run(self, run_id: str, replica_id: str) -> Lease | None:
        rows = await self._lease_rows(CLAIM_SLEEPING_RUN, (replica_id, run_id), write=True)
        return Lease(run_id, replica_id, int(str(rows[0][0]))) if rows else None

    async def release_runs(self, replica_id: str) -> list[str]:
        rows = await self._lease_rows(RELEASE_RUNS, (replica_id,), write=True)
        return [str(row[0]) for row in rows]

    async def owned_runs(self, replica_id: str) -> dict[str, int]:
        rows = await self._lease_rows(OWNED_RUNS, (replica_id,), write=False)
        return {str(row[0]): int(str(row[1])) for row in rows}

    async def request_stop(self, run_id: str, kind: str) -> bool:
        return bool(await self._lease_rows(REQUEST_STOP, (kind, run_id), write=True))

    async def stop_requests(self, replica_id: str) -> list[tuple[str, str]]:
        rows = await self._lease_rows(STOP_REQUESTS, (replica_id,), write=False)
        return [(str(row[0]), str(row[1])) for row in rows]


def count_failure(metrics: Metrics, error: BaseException, jobs: int = 1) -> None:
    """Count a write the store did not apply: a batch fenced off by another
    replica's lease (cairn_fencing_rejections_total), or a store error by
    kind. A busy or existing thread is the caller's conflict, not the store's."""
    if isinstance(error, LeaseLost):
        metrics.fencing_rejections.inc(jobs)
    elif isinstance(error, ThreadBusy | ThreadChanged | ThreadAlreadyExists):
        return
    elif isinstance(error, StoreUnavailable):
        metrics.store_errors.labels(kind="unavailable").inc(jobs)
    elif isinstance(error, StoreError):
        metrics.store_errors.labels(kind="error").inc(jobs)
