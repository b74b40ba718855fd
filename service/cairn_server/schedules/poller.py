"""The loop every replica runs: claim the due times of schedules, fire
them, and act on open firings that no replica holds (queued ones whose
previous run ended, and those of replicas that died).

A due time is claimed by moving the schedule's next due time with a
compare-and-set: of several replicas that notice it, one moves it and
fires; the others find it moved. A claim fires at most one due time, the
latest that passed: due times noticed more than GRACE seconds late were
missed (no replica was running), and the schedule's catch-up policy says
whether the latest of them still fires.

Example::

    poller = SchedulePoller(schedules, runs, clock=runs.timer_clock)
    task = asyncio.create_task(poller.run())  # cancel it to stop
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from cairn_server.runtime.manager import RunManager
from cairn_server.schedules.base import (
    CatchupPolicy,
    FiringRecord,
    FiringState,
    ScheduleRecord,
)
from cairn_server.schedules.firing import Firings
from cairn_server.schedules.store import ScheduleStore

log = logging.getLogger(__name__)

GRACE = 60.0
"""A due time noticed more than this many seconds late was missed."""

BATCH = 100
"""Due schedules (and open firings) handled per look; the rest at the next."""


def firing_id_of(due_at: float) -> str:
    """The id of a due time's firing: the time in UTC, `20261206T090000Z`."""
    return datetime.fromtimestamp(due_at, UTC).strftime("%Y%m%dT%H%M%SZ")


class SchedulePoller:
    """Fires the schedules of every namespace, on the service's clock."""

    def __init__(
        self,
        schedules: ScheduleStore,
        runs: RunManager,
        *,
        clock: Callable[[], float] = time.time,
        poll_interval: float = 1.0,
        max_runs_per_namespace: int | None = None,
    ) -> None:
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval}")
        self.firings = Firings(schedules, runs, max_runs=max_runs_per_namespace)
        self.poll_interval = poll_interval
        self._schedules = schedules
        self._runs = runs
        self.clock = clock
        """The service's timer clock: due times are read on it."""
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look again now (a schedule was created or resumed here)."""
        self._wake.set()

    async def run(self) -> None:
        """Look every poll_interval seconds, or at the next due time when it
        is sooner, until cancelled. A look that fails (the store is away) is
        logged and tried again at the next."""
        while True:
            delay = self.poll_interval
            try:
                await self.tick()
                soonest = await self._schedules.next_due()
            except Exception:
                log.exception("schedules: look for due firings failed; trying again")
            else:
                if soonest is not None:
                    delay = min(delay, max(soonest - self.clock(), 0.01))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()

    async def tick(self) -> None:
        """One look: fire what is due at the clock's time, then take over
        the open firings nobody holds."""
        now = self.clock()
        for schedule in await self._schedules.due(now, limit=BATCH):
            await self._claim(schedule, now)
        wall_now = self._runs.clock()
        for firing in await self._schedules.open_firings(wall_now, limit=BATCH):
            if firing.state is FiringState.WAITING and await self.firings.is_blocked(firing):
                continue
            taken = await self._schedules.take(
                firing, by=self.firings.replica_id, until=self.firings.claim_until()
            )
            if taken is not None:
                await self.firings.act(taken)

    async def _claim(self, schedule: ScheduleRecord, now: float) -> None:
        spec = schedule.spec
        due = max(spec.latest_until(now) or schedule.next_fire_at, schedule.next_fire_at)
        missed = now - due > GRACE
        firing = FiringRecord(
            namespace=schedule.namespace,
            schedule_id=schedule.schedule_id,
            firing_id=firing_id_of(due),
            due_at=due,
            fired_at=now,
        )
        if missed and schedule.catchup_policy is CatchupPolicy.SKIP:
            message = "missed: no replica was running at its due time (catch-up policy skip)"
            firing = replace(firing, state=FiringState.SKIPPED, message=message)
        else:
            firing = replace(
                firing,
                claimed_by=self.firings.replica_id,
                claim_until=self.firings.claim_until(),
            )
        if not await self._schedules.advance(schedule, spec.next_after(now), firing):
            return  # another replica claimed it, or it was paused or deleted
        if firing.state is FiringState.PENDING:
            await self.firings.act(firing)
