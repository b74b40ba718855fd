"""The loop that wakes sleeping runs when they are due, and answers the
interrupts that timed out.

A run whose entrypoint sleeps is parked in the store with the due time of
its timer and no owner (WriteBatch.sleeps), so it costs no memory anywhere.
Every replica runs this loop: it claims the due runs (the store hands each
to one replica only) and resumes them, then waits until the earliest due
time the store knows of, a run parked here earlier than that, or
`poll_interval`, whichever comes first. The poll bounds how late a replica
notices a run parked on another replica, or a test clock moved forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from cairn_server.domain import RunRecord, WaitReason
from cairn_server.metrics import Metrics
from cairn_server.store import Lease, Store

log = logging.getLogger(__name__)

POLL_INTERVAL = 1.0
ANSWER_RETRY = 30.0
"""Seconds after which another replica answers timed-out interrupts that the
replica which took them did not answer (it died, or the thread was busy)."""
CLAIM_BATCH = 100
"""Due runs claimed in one statement: a replica takes its share of a crowd
of due timers a batch at a time, leaving the rest to the others."""


class TimerWaker:
    def __init__(
        self,
        store: Store,
        *,
        replica_id: str,
        clock: Callable[[], float],
        wake: Callable[[RunRecord, Lease], Awaitable[None]],
        answer: Callable[[RunRecord], Awaitable[None]],
        poll_interval: float = POLL_INTERVAL,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._replica_id = replica_id
        self._clock = clock
        self._wake = wake
        self._answer = answer
        self._poll_interval = poll_interval
        self._metrics = metrics if metrics is not None else Metrics()
        self._task: asyncio.Task[None] | None = None
        self._nudged = asyncio.Event()
        self._planned: float | None = None
        """The due time the loop waits for now (None: only the poll)."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Wake no more runs here (shutdown): the other replicas wake them."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def parked(self, wake_at: float) -> None:
        """A run parked here until `wake_at`: look again sooner if the loop
        waits for a later time."""
        if self._planned is None or wake_at < self._planned:
            self._nudged.set()

    async def wake_due(self) -> int:
        """Resume every sleeping run due now and answer the interrupts that
        timed out; returns how many runs it took."""
        return await self._wake_sleepers() + await self._answer_interrupts()

    async def _answer_interrupts(self) -> int:
        answered = 0
        while True:
            now = self._clock()
            runs = await self._store.claim_due_interrupts(
                now=now, retry_at=now + ANSWER_RETRY, limit=CLAIM_BATCH
            )
            for run in runs:
                deadlines = [i.timeout_at for i in run.interrupts if i.timeout_at is not None]
                self._fired(min(deadlines, default=now), now)
            for outcome in await asyncio.gather(
                *(self._answer(run) for run in runs), return_exceptions=True
            ):
                if isinstance(outcome, BaseException):
                    log.warning("answering a timed-out interrupt failed", exc_info=outcome)
            answered += len(runs)
            if len(runs) < CLAIM_BATCH:
                return answered

    async def _wake_sleepers(self) -> int:
        woken = 0
        while True:
            now = self._clock()
            claimed = await self._store.claim_due_runs(self._replica_id, now=now, limit=CLAIM_BATCH)
            for run, _ in claimed:
                due = next((w.until for w in run.waiting if w.reason is WaitReason.TIMER), None)
                self._fired(now if due is None else due, now)
            await asyncio.gather(*(self._wake(run, lease) for run, lease in claimed))
            woken += len(claimed)
            if len(claimed) < CLAIM_BATCH:
                return woken

    def _fired(self, due: float, now: float) -> None:
        """cairn_timers_fired_total and cairn_timer_lateness_seconds."""
        self._metrics.timers_fired.inc()
        self._metrics.timer_lateness.observe(max(now - due, 0.0))

    async def _run(self) -> None:
        while True:
            self._nudged.clear()
            delay = self._poll_interval
            try:
                await self.wake_due()
                delay = await self._until_next()
            except Exception:
                log.warning("waking sleeping runs failed; trying again", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudged.wait(), delay)

    async def _until_next(self) -> float:
        """Seconds to wait before looking again."""
        self._planned = await self._store.next_wake_time()
        if self._planned is None:
            return self._poll_interval
        return min(max(self._planned - self._clock(), 0.0), self._poll_interval)
