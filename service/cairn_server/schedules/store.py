"""Schedules and their firings in the database of the server's store.

One SQL text serves both stores (written with `?`; Postgres numbers them).
A backend only runs it: reads on the store's reader, writes as one job of
the store's writer (its group commit), where each step may be guarded to
run only when the step before it returned rows (a compare-and-set followed
by what it allows).

Example::

    schedules = open_schedules(store)
    created, record = await schedules.create(record)
"""

from __future__ import annotations

import abc
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from cairn_server.schedules.base import (
    RECENT_FIRINGS,
    CatchupPolicy,
    FiringRecord,
    FiringState,
    OverlapPolicy,
    ScheduleRecord,
    ThreadPolicy,
)
from cairn_server.schedules.spec import Spec
from cairn_server.store.base import Store

Row = Sequence[Any]

_SCHEDULE_COLUMNS = (
    "namespace, schedule_id, cron, interval_seconds, time_zone, anchor_at, target, input,"
    " metadata, thread_policy, thread_id, overlap_policy, catchup_policy, paused,"
    " next_fire_at, created_at, updated_at, request_id"
)
_FIRING_COLUMNS = (
    "namespace, schedule_id, firing_id, due_at, fired_at, state, run_id, thread_id, message,"
    " triggered, claimed_by, claim_until"
)
_KEY = "namespace = ? AND schedule_id = ?"
_FIRING_KEY = f"{_KEY} AND firing_id = ?"

INSERT_SCHEDULE = (
    f"INSERT INTO schedules ({_SCHEDULE_COLUMNS}) VALUES ({', '.join('?' * 18)})"
    f" ON CONFLICT DO NOTHING RETURNING schedule_id"
)
GET_SCHEDULE = f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE {_KEY}"
LIST_SCHEDULES = (
    f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE namespace = ? AND schedule_id > ?"
    " ORDER BY schedule_id LIMIT ?"
)
SET_PAUSED = (
    "UPDATE schedules SET paused = ?, next_fire_at = ?, updated_at = ?"
    f" WHERE {_KEY} RETURNING {_SCHEDULE_COLUMNS}"
)
DELETE_SCHEDULE = f"DELETE FROM schedules WHERE {_KEY} RETURNING schedule_id"
DELETE_FIRINGS = f"DELETE FROM schedule_firings WHERE {_KEY}"
DUE = (
    f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE paused = 0 AND next_fire_at <= ?"
    " ORDER BY next_fire_at LIMIT ?"
)
NEXT_DUE = "SELECT MIN(next_fire_at) FROM schedules WHERE paused = 0"
# The claims (ADVANCE, TAKE_FIRING) skip a row another replica is claiming
# (Postgres: {lock} is FOR UPDATE SKIP LOCKED) rather than wait for its
# commit: that replica fires it, and waiting inside the group commit would
# hold up this replica's other writes (and could deadlock two groups).
ADVANCE = (
    "UPDATE schedules SET next_fire_at = ? WHERE (namespace, schedule_id) IN ("
    f" SELECT namespace, schedule_id FROM schedules WHERE {_KEY} AND next_fire_at = ?"
    " AND paused = 0{lock}) RETURNING schedule_id"
)
INSERT_FIRING = (
    f"INSERT INTO schedule_firings ({_FIRING_COLUMNS}) VALUES ({', '.join('?' * 12)})"
    " ON CONFLICT DO NOTHING RETURNING firing_id"
)
GET_FIRING = f"SELECT {_FIRING_COLUMNS} FROM schedule_firings WHERE {_FIRING_KEY}"
RECENT = (
    f"SELECT {_FIRING_COLUMNS} FROM schedule_firings WHERE {_KEY}"
    " ORDER BY fired_at DESC, firing_id DESC LIMIT ?"
)
RECENT_OF_RANGE = (
    f"SELECT {_FIRING_COLUMNS} FROM schedule_firings"
    " WHERE namespace = ? AND schedule_id >= ? AND schedule_id <= ?"
    " ORDER BY fired_at DESC, firing_id DESC"
)
LAST_STARTED = (
    f"SELECT {_FIRING_COLUMNS} FROM schedule_firings WHERE {_KEY} AND state = 'started'"
    " ORDER BY fired_at DESC, firing_id DESC LIMIT 1"
)
WAITING = (
    f"SELECT {_FIRING_COLUMNS} FROM schedule_firings WHERE {_KEY} AND state = 'waiting'"
    " ORDER BY fired_at, firing_id LIMIT 1"
)
OPEN_FIRINGS = (
    f"SELECT {_FIRING_COLUMNS} FROM schedule_firings"
    " WHERE state IN ('pending', 'waiting') AND claim_until <= ?"
    " ORDER BY fired_at, firing_id LIMIT ?"
)
TAKE_FIRING = (
    "UPDATE schedule_firings SET claimed_by = ?, claim_until = ?"
    " WHERE (namespace, schedule_id, firing_id) IN ("
    "  SELECT namespace, schedule_id, firing_id FROM schedule_firings"
    f"  WHERE {_FIRING_KEY} AND state = ? AND claim_until = ?{{lock}}) RETURNING firing_id"
)
SETTLE_FIRING = (
    "UPDATE schedule_firings SET state = ?, run_id = ?, thread_id = ?, message = ?,"
    f" claimed_by = ?, claim_until = ? WHERE {_FIRING_KEY} AND claimed_by = ?"
    " RETURNING firing_id"
)
# The newest RECENT_FIRINGS stay, and so do open firings and the latest
# started one (the overlap policies ask whether its run is still active).
TRIM_FIRINGS = (
    f"DELETE FROM schedule_firings WHERE {_KEY} AND state IN ('started', 'skipped', 'failed')"
    " AND firing_id NOT IN ("
    f"  SELECT firing_id FROM schedule_firings WHERE {_KEY}"
    "   ORDER BY fired_at DESC, firing_id DESC LIMIT ?)"
    " AND firing_id <> COALESCE(("
    f"  SELECT firing_id FROM schedule_firings WHERE {_KEY} AND state = 'started'"
    "   ORDER BY fired_at DESC, firing_id DESC LIMIT 1), '')"
)


@dataclass(frozen=True, slots=True)
class Step:
    """One statement of a write job."""

    sql: str
    params: tuple[object, ...]
    guarded: bool = False
    """Run only when the step before returned rows (else skip it and every
    guarded step after it)."""


class Backend(abc.ABC):
    lock = ""
    """What a claim's subquery ends with to skip rows locked by others."""

    @abc.abstractmethod
    async def read(self, sql: str, params: tuple[object, ...]) -> list[Row]:
        """The rows of one query on the committed state."""

    @abc.abstractmethod
    async def write(self, steps: Sequence[Step]) -> list[list[Row]]:
        """Run `steps` in one transaction; the rows each returned ([] for a
        skipped one)."""


class ScheduleStore:
    """Schedules and firings on a Backend. Callers pass well-formed records."""

    def __init__(self, backend: Backend) -> None:
        self._db = backend

    # --- schedules ----------------------------------------------------------

    async def create(self, record: ScheduleRecord) -> tuple[bool, ScheduleRecord]:
        """(True, record) when created; (False, the existing schedule) when
        its id is taken."""
        [inserted] = await self._db.write([Step(INSERT_SCHEDULE, _schedule_params(record))])
        if inserted:
            return True, record
        existing = await self.get(record.namespace, record.schedule_id)
        if existing is None:  # deleted in between: try again
            return await self.create(record)
        return False, existing

    async def get(self, namespace: str, schedule_id: str) -> ScheduleRecord | None:
        rows = await self._db.read(GET_SCHEDULE, (namespace, schedule_id))
        if not rows:
            return None
        firings = await self._db.read(RECENT, (namespace, schedule_id, RECENT_FIRINGS))
        return replace(_schedule(rows[0]), recent_firings=tuple(map(_firing, firings)))

    async def list_page(
        self, namespace: str, *, limit: int, after: str = ""
    ) -> tuple[list[ScheduleRecord], str]:
        """Schedules by id after `after`, with their recent firings; the id
        to pass as `after` for the next page ('' on the last page)."""
        rows = await self._db.read(LIST_SCHEDULES, (namespace, after, limit + 1))
        page = [_schedule(row) for row in rows[:limit]]
        if not page:
            return [], ""
        firings: dict[str, list[FiringRecord]] = {}
        bounds = (namespace, page[0].schedule_id, page[-1].schedule_id)
        for row in await self._db.read(RECENT_OF_RANGE, bounds):
            of = firings.setdefault(row[1], [])
            if len(of) < RECENT_FIRINGS:
                of.append(_firing(row))
        page = [replace(s, recent_firings=tuple(firings.get(s.schedule_id, ()))) for s in page]
        return page, page[-1].schedule_id if len(rows) > limit else ""

    async def set_paused(
        self, namespace: str, schedule_id: str, *, paused: bool, next_fire_at: float, now: float
    ) -> bool:
        """Pause or resume; False when there is no such schedule."""
        params = (int(paused), float(next_fire_at), float(now), namespace, schedule_id)
        [rows] = await self._db.write([Step(SET_PAUSED, params)])
        return bool(rows)

    async def delete(self, namespace: str, schedule_id: str) -> bool:
        key = (namespace, schedule_id)
        _, deleted = await self._db.write([Step(DELETE_FIRINGS, key), Step(DELETE_SCHEDULE, key)])
        return bool(deleted)

    # --- firing -------------------------------------------------------------

    async def due(self, now: float, *, limit: int) -> list[ScheduleRecord]:
        """Unpaused schedules of every namespace due at `now`, soonest first."""
        return [_schedule(row) for row in await self._db.read(DUE, (float(now), limit))]

    async def next_due(self) -> float | None:
        """The soonest due time of any unpaused schedule."""
        rows = await self._db.read(NEXT_DUE, ())
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    async def advance(
        self, schedule: ScheduleRecord, next_fire_at: float, firing: FiringRecord | None
    ) -> bool:
        """Move the schedule's next due time from the one it was read with to
        `next_fire_at`, and add `firing`, if no replica did it first (and the
        schedule is neither paused nor deleted meanwhile): whether it moved."""
        key = (schedule.namespace, schedule.schedule_id)
        params = (float(next_fire_at), *key, float(schedule.next_fire_at))
        steps = [Step(ADVANCE.format(lock=self._db.lock), params)]
        if firing is not None:
            steps.append(Step(INSERT_FIRING, _firing_params(firing), guarded=True))
            steps.append(Step(TRIM_FIRINGS, _trim_params(*key), guarded=True))
        [moved, *_] = await self._db.write(steps)
        return bool(moved)

    async def add_firing(self, firing: FiringRecord) -> tuple[bool, FiringRecord]:
        """(True, firing) when added; (False, the firing of that id) when it exists."""
        key = (firing.namespace, firing.schedule_id)
        inserted, _ = await self._db.write(
            [
                Step(INSERT_FIRING, _firing_params(firing)),
                Step(TRIM_FIRINGS, _trim_params(*key), guarded=True),
            ]
        )
        if inserted:
            return True, firing
        existing = await self.get_firing(*key, firing.firing_id)
        assert existing is not None  # firings go only with their schedule
        return False, existing

    async def get_firing(
        self, namespace: str, schedule_id: str, firing_id: str
    ) -> FiringRecord | None:
        rows = await self._db.read(GET_FIRING, (namespace, schedule_id, firing_id))
        return _firing(rows[0]) if rows else None

    async def last_started(self, namespace: str, schedule_id: str) -> FiringRecord | None:
        rows = await self._db.read(LAST_STARTED, (namespace, schedule_id))
        return _firing(rows[0]) if rows else None

    async def first_waiting(self, namespace: str, schedule_id: str) -> FiringRecord | None:
        rows = await self._db.read(WAITING, (namespace, schedule_id))
        return _firing(rows[0]) if rows else None

    async def open_firings(self, wall_now: float, *, limit: int) -> list[FiringRecord]:
        """Pending and waiting firings (of every namespace) that nobody has
        claimed at `wall_now`, oldest first."""
        rows = await self._db.read(OPEN_FIRINGS, (float(wall_now), limit))
        return [_firing(row) for row in rows]

    async def take(self, firing: FiringRecord, *, by: str, until: float) -> FiringRecord | None:
        """Claim an open firing as read (no other replica took it since):
        the claimed firing, or None."""
        params = (
            by,
            float(until),
            firing.namespace,
            firing.schedule_id,
            firing.firing_id,
            firing.state.value,
            float(firing.claim_until),
        )
        [rows] = await self._db.write([Step(TAKE_FIRING.format(lock=self._db.lock), params)])
        return replace(firing, claimed_by=by, claim_until=until) if rows else None

    async def settle(self, firing: FiringRecord, *, claimed_by: str) -> bool:
        """Write the firing's state, run and message, if `claimed_by` still
        holds it: whether it did."""
        key = (firing.namespace, firing.schedule_id)
        params = (
            firing.state.value,
            firing.run_id,
            firing.thread_id,
            firing.message,
            firing.claimed_by,
            float(firing.claim_until),
            *key,
            firing.firing_id,
            claimed_by,
        )
        [rows, _] = await self._db.write(
            [Step(SETTLE_FIRING, params), Step(TRIM_FIRINGS, _trim_params(*key), guarded=True)]
        )
        return bool(rows)


# --- rows ---------------------------------------------------------------------


def _schedule_params(s: ScheduleRecord) -> tuple[object, ...]:
    return (
        s.namespace,
        s.schedule_id,
        s.spec.cron,
        float(s.spec.interval),
        s.spec.time_zone,
        float(s.spec.anchor),
        s.target,
        json.dumps(s.input),
        json.dumps(s.metadata),
        s.thread_policy.value,
        s.thread_id,
        s.overlap_policy.value,
        s.catchup_policy.value,
        int(s.paused),
        float(s.next_fire_at),
        float(s.created_at),
        float(s.updated_at),
        s.request_id,
    )


def _schedule(row: Row) -> ScheduleRecord:
    spec = Spec(cron=row[2], interval=float(row[3]), time_zone=row[4], anchor=float(row[5]))
    return ScheduleRecord(
        namespace=row[0],
        schedule_id=row[1],
        spec=spec,
        target=row[6],
        input=json.loads(row[7]),
        metadata=json.loads(row[8]),
        thread_policy=ThreadPolicy(row[9]),
        thread_id=row[10],
        overlap_policy=OverlapPolicy(row[11]),
        catchup_policy=CatchupPolicy(row[12]),
        paused=bool(row[13]),
        next_fire_at=float(row[14]),
        created_at=float(row[15]),
        updated_at=float(row[16]),
        request_id=row[17],
    )


def _firing_params(f: FiringRecord) -> tuple[object, ...]:
    return (
        f.namespace,
        f.schedule_id,
        f.firing_id,
        float(f.due_at),
        float(f.fired_at),
        f.state.value,
        f.run_id,
        f.thread_id,
        f.message,
        int(f.triggered),
        f.claimed_by,
        float(f.claim_until),
    )


def _firing(row: Row) -> FiringRecord:
    return FiringRecord(
        namespace=row[0],
        schedule_id=row[1],
        firing_id=row[2],
        due_at=float(row[3]),
        fired_at=float(row[4]),
        state=FiringState(row[5]),
        run_id=row[6],
        thread_id=row[7],
        message=row[8],
        triggered=bool(row[9]),
        claimed_by=row[10],
        claim_until=float(row[11]),
    )


def _trim_params(namespace: str, schedule_id: str) -> tuple[object, ...]:
    key = (namespace, schedule_id)
    return (*key, *key, RECENT_FIRINGS, *key)


def open_schedules(store: Store) -> ScheduleStore:
    """The schedules kept in `store`'s database (a SqliteStore or a
    PostgresStore); nothing to open or close besides the store."""
    from cairn_server.store.postgres import PostgresStore
    from cairn_server.store.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        from cairn_server.schedules.sqlite import SqliteBackend

        return ScheduleStore(SqliteBackend(store))
    if isinstance(store, PostgresStore):
        from cairn_server.schedules.postgres import PostgresBackend

        return ScheduleStore(PostgresBackend(store))
    raise TypeError(f"no schedule store for a {type(store).__name__}")
