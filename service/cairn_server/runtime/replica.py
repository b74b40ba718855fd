"""This replica's row in the store and the leases it takes (DESIGN.md
section 7).

The row is renewed every `lease_ttl / 5` seconds, on a beat of its own so
that nothing the replica is busy with lets it expire. A second loop, on the
same period, drops the runs another replica took from this one, passes on the
stops other replicas asked for, and claims the runs of replicas whose row
expired (or that released theirs when shutting down), which the run manager
then resumes from their last checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from cairn_server.domain import RunRecord
from cairn_server.metrics import Metrics
from cairn_server.runtime import inbox
from cairn_server.store import Lease, Store

log = logging.getLogger(__name__)

DEFAULT_LEASE_TTL = 5.0


class Driven(Protocol):
    """A run this replica drives, as the lease loops see it."""

    @property
    def lease(self) -> Lease: ...

    def post(self, message: inbox.Message) -> None: ...


class ReplicaLeases:
    def __init__(
        self,
        store: Store,
        *,
        replica_id: str,
        lease_ttl: float,
        clock: Callable[[], float],
        driven: Callable[[], Mapping[str, Driven]],
        resume: Callable[[RunRecord, Lease], Awaitable[None]],
        metrics: Metrics | None = None,
    ) -> None:
        if not lease_ttl > 0:
            raise ValueError(f"lease_ttl must be positive, got {lease_ttl}")
        self.store = store
        self.replica_id = replica_id
        self.lease_ttl = lease_ttl
        self.address = ""
        """Where the other replicas reach this one (relays)."""
        self._clock = clock
        self._driven = driven
        self._resume = resume
        self._metrics = metrics if metrics is not None else Metrics()
        self._metrics.watch_leases(lambda: len(driven()))
        self._task: asyncio.Task[None] | None = None
        self._renewed_since: float | None = None
        """Since when this replica's row has been live without a gap."""
        self._live_until = 0.0
        self._stops_posted: set[tuple[str, int]] = set()
        """The runs (under which lease) told of another replica's stop request."""
        self.claiming = True
        """False once shutting down: the runs of others are left to others."""

    async def open(self) -> list[tuple[RunRecord, Lease]]:
        """Take back the runs an earlier life of this replica held, and those
        of replicas whose row expired (a SQLite store: every run), and renew
        the row; returns the runs to resume."""
        now = self._clock()
        claimed = await self.store.claim_runs(self.replica_id, now=now, own=True)
        await self._renew(now)
        return claimed

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep())

    async def close(self) -> None:
        """Stop renewing, release the runs still held (they stay RUNNING for
        the next replica to claim) and remove the row."""
        self.claiming = False
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            released = await self.store.release_runs(self.replica_id)
            await self.store.remove_replica(self.replica_id)
        except Exception:
            log.warning("releasing the leases of replica %s failed", self.replica_id)
        else:
            if released:
                log.info("released %d runs for other replicas", len(released))

    async def _renew(self, now: float) -> None:
        expires_at = now + self.lease_ttl
        try:
            await self.store.renew_replica(
                self.replica_id, address=self.address, now=now, expires_at=expires_at
            )
        except BaseException:
            self._renewed_since = None
            raise
        # The store retries through an outage: a renewal that lands after the
        # row expired (or after its own expiry) means the row lapsed meanwhile.
        landed = self._clock()
        live_until, self._live_until = self._live_until, expires_at
        if self._renewed_since is None or landed > min(live_until, expires_at):
            self._renewed_since = landed

    def _may_claim(self, now: float) -> bool:
        """Whether expired replicas are dead, as far as this one can tell: it
        has renewed its own row for a whole lease. A replica that was itself
        cut off from the database (or just started) gives the others that
        long to renew theirs: they were most likely cut off too."""
        since = self._renewed_since
        return self.claiming and since is not None and now - since >= self.lease_ttl

    async def _keep(self) -> None:
        watching = asyncio.create_task(self._watch())
        try:
            while True:
                await asyncio.sleep(self.lease_ttl / 5)
                try:
                    await self._renew(self._clock())
                except Exception:
                    log.warning("renewing the lease failed; trying again", exc_info=True)
        finally:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ttl / 5)
            try:
                await self._watch_once()
            except Exception:
                log.warning("watching the leases failed; trying again", exc_info=True)

    async def _watch_once(self) -> None:
        """Drop the runs another replica took, pass on the stops other
        replicas asked for, and claim the runs of expired replicas."""
        driven = dict(self._driven())
        owned = await self.store.owned_runs(self.replica_id)
        for run_id, run in driven.items():
            if owned.get(run_id) != run.lease.token:
                run.post(inbox.LeaseLost())
        self._stops_posted &= {(run_id, run.lease.token) for run_id, run in driven.items()}
        for run_id, _kind in await self.store.stop_requests(self.replica_id):
            stopping = driven.get(run_id)
            if stopping is None or (run_id, stopping.lease.token) in self._stops_posted:
                continue
            self._stops_posted.add((run_id, stopping.lease.token))
            stopping.post(inbox.CancelRequested())
        now = self._clock()
        if not self._may_claim(now):
            return
        claimed = await self.store.claim_runs(self.replica_id, now=now, own=False)
        if claimed:
            log.info("taking over %d runs", len(claimed))
            self._metrics.lease_takeovers.inc(len(claimed))
        await asyncio.gather(*(self._resume(run, lease) for run, lease in claimed))
