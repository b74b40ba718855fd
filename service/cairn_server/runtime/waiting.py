"""What a run waits on (Run.waiting), kept cheap.

The dispatcher says when a task of the run is queued and why it waits (no
connected worker serves its name, or all that do are busy; a retry waits for
its backoff); the task's assignment, retry or withdrawal ends the wait. A
wait is published, i.e. set on the run, stored with it and emitted as a `run`
event, only once it has lasted `SETTLE` seconds, and the end of a published
wait at the next check: a task queued for a moment changes nothing, and a run
rewrites its row at most about twice a second, only while what it waits on
changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from cairn_server import logs, namespaces
from cairn_server.domain import RunRecord, WaitReason, WaitRecord
from cairn_server.engine.decisions import Cancel, Decision, RetryLater
from cairn_server.runtime import inbox

log = logging.getLogger(__name__)

SETTLE = 0.5
"""Seconds a wait lasts before the run reports it."""


def _key(record: WaitRecord) -> tuple[str, WaitReason, float | None]:
    return record.task_id, record.reason, record.until


class Waiting:
    """The waits of one run. Driven from its actor only: `observe` each inbox
    message, `decided` each list of decisions, `finished` at the run's end.
    `wake()` must post `inbox.WaitingDue` to the run's inbox; `publish(run)`
    stores and emits the run once its `waiting` changed."""

    def __init__(
        self,
        run: RunRecord,
        *,
        wait_reason: Callable[[str, str], WaitReason | None],
        clock: Callable[[], float],
        wake: Callable[[], None],
        publish: Callable[[RunRecord], None],
    ) -> None:
        self._run = run
        self._wait_reason = wait_reason
        self._clock = clock
        self._wake = wake
        self._publish = publish
        self._current: dict[str, tuple[WaitRecord, float]] = {}
        """Task id -> its wait and when (loop time) it began."""
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        if run.waiting:
            # Stored by an earlier owner: kept if the task waits again for
            # the same reason (with its first `since`), dropped otherwise.
            self._arm(SETTLE)

    def observe(self, message: inbox.Message) -> None:
        match message:
            case inbox.Waiting(task_id, name, path):
                reason = self._wait_reason(name, task_id)
                if reason is not None:  # else assigned or withdrawn meanwhile
                    self._wait(WaitRecord(reason, task_id, name, self._clock(), None, path))
            case inbox.Assigned(task_id) | inbox.RetryDue(task_id):
                self._resolved((task_id,))
            case inbox.WaitingDue():
                self._timer = None
                self._check()

    def decided(self, decisions: Iterable[Decision]) -> None:
        for decision in decisions:
            match decision:
                case RetryLater(task_id, delay, name, path):
                    now = self._clock()
                    reason = WaitReason.RETRY_BACKOFF
                    self._wait(WaitRecord(reason, task_id, name, now, now + delay, path))
                case Cancel(task_ids):
                    self._resolved(task_ids)

    def finished(self) -> None:
        """The run ended or stopped at an interrupt: it waits on nothing."""
        self._closed = True
        self._current.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._run.waiting = []

    # --- internals ------------------------------------------------------------

    def _wait(self, record: WaitRecord) -> None:
        known = self._current.get(record.task_id)
        if known is not None and _key(known[0]) == _key(record):
            return
        self._current[record.task_id] = (record, asyncio.get_running_loop().time())
        self._arm(SETTLE)

    def _resolved(self, task_ids: Iterable[str]) -> None:
        if any(self._current.pop(t, None) is not None for t in list(task_ids)):
            self._arm(SETTLE)

    def _arm(self, delay: float) -> None:
        if self._timer is None and not self._closed:
            self._timer = asyncio.get_running_loop().call_later(delay, self._wake)

    def _check(self) -> None:
        """Publish the waits that have lasted SETTLE, drop those that ended."""
        if self._closed:
            return
        now = asyncio.get_running_loop().time()
        published = {_key(w): w for w in self._run.waiting}
        settled: list[WaitRecord] = []
        unsettled = False
        for record, began in self._current.values():
            earlier = published.get(_key(record))
            if earlier is not None:
                settled.append(earlier)  # keeps its first `since`
            elif now - began >= SETTLE:
                settled.append(record)
            else:
                unsettled = True
        settled.sort(key=lambda w: (w.since, w.task_id))
        if unsettled:
            self._arm(SETTLE)
        if [_key(w) for w in settled] == [_key(w) for w in self._run.waiting]:
            return
        before = set(published)
        for record in settled:
            if _key(record) not in before:
                level = logging.WARNING if record.reason is WaitReason.NO_WORKER else logging.INFO
                log.log(
                    level,
                    "run %s on thread %s waits: %s (task %s)",
                    self._run.run_id,
                    namespaces.display(self._run.thread_id),
                    record.describe(),
                    record.task_id,
                    extra=logs.ids(
                        run=self._run, task_id=record.task_id, task_name=record.task_name
                    ),
                )
        if not settled:
            log.info(
                "run %s on thread %s no longer waits",
                self._run.run_id,
                namespaces.display(self._run.thread_id),
                extra=logs.ids(run=self._run),
            )
        self._run.waiting = settled
        self._publish(self._run)
