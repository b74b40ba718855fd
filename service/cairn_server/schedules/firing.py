"""What a claimed firing does: apply the schedule's overlap policy to the
run of an earlier firing that is still active, then start the firing's run
through the run manager, and record what came of it.

A firing's run is started with request_id `schedule:<id>:<firing_id>`, so
acting on one firing again (its replica died after starting the run, before
recording it) finds that run instead of starting a second one.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace

from cairn_server import namespaces
from cairn_server.domain import MultitaskStrategy, RunRecord
from cairn_server.errors import ServiceError, Unavailable
from cairn_server.runtime.manager import RunManager, StartRun
from cairn_server.schedules.base import (
    FiringRecord,
    FiringState,
    OverlapPolicy,
    ScheduleRecord,
    ThreadPolicy,
)
from cairn_server.schedules.store import ScheduleStore

log = logging.getLogger(__name__)

CLAIM_TTL = 30.0
"""Wall-clock seconds a replica holds an open firing; then another takes it."""


class Firings:
    """Acts on the firings this replica claimed."""

    def __init__(
        self, schedules: ScheduleStore, runs: RunManager, *, max_runs: int | None = None
    ) -> None:
        self._schedules = schedules
        self._runs = runs
        self._max_runs = max_runs
        """The namespace's limit of active runs per replica, as for clients."""

    @property
    def replica_id(self) -> str:
        return self._runs.replica_id

    def claim_until(self) -> float:
        return self._runs.clock() + CLAIM_TTL

    async def act(self, firing: FiringRecord) -> FiringRecord:
        """Start, skip, queue or fail a firing this replica holds; returns it
        as recorded (unchanged when the schedule is gone or the store or the
        run manager cannot take it now: another replica tries again)."""
        schedule = await self._schedules.get(firing.namespace, firing.schedule_id)
        if schedule is None:
            return firing  # deleted meanwhile, with its firings
        thread_key = namespaces.scoped(schedule.namespace, schedule.thread_of(firing.firing_id))
        active = await self._active_run(schedule, thread_key)
        strategy = MultitaskStrategy.REJECT
        if active is not None:
            if schedule.overlap_policy is not OverlapPolicy.CANCEL_PREVIOUS:
                return await self._blocked(schedule, firing, active.run_id)
            if schedule.thread_policy is ThreadPolicy.ONE_THREAD:
                strategy = MultitaskStrategy.INTERRUPT  # the run manager cancels it
            else:
                with contextlib.suppress(ServiceError):  # it ended, or stops soon
                    await self._runs.cancel(active.run_id)
        request = StartRun(
            thread_id=thread_key,
            target=schedule.target,
            has_input=True,
            input=schedule.input,
            metadata={
                **schedule.metadata,
                "schedule_id": schedule.schedule_id,
                "schedule_firing_id": firing.firing_id,
            },
            request_id=schedule.request_id_of(firing.firing_id),
            create_thread=True,
            multitask_strategy=strategy,
        )
        try:
            self._runs.check_room(schedule.namespace, self._max_runs)
            started = await self._runs.start(request)
        except Unavailable as error:
            log.warning("schedule %s: cannot fire now: %s", _name(firing), error.message)
            # Let any replica (this one too) try it at its next look.
            return await self._settle(firing, FiringState.PENDING, released=True)
        except ServiceError as error:
            if error.reason == "THREAD_BUSY":  # a run started on the thread meanwhile
                return await self._blocked(schedule, firing, error.metadata.get("run_id", ""))
            message = f"{error.reason}: {error.message}"
            return await self._settle(firing, FiringState.FAILED, message=message)
        run = started if isinstance(started, RunRecord) else started.run
        return await self._settle(
            firing,
            FiringState.STARTED,
            run_id=run.run_id,
            thread_id=namespaces.unscoped(run.thread_id),
        )

    async def _active_run(self, schedule: ScheduleRecord, thread_key: str) -> RunRecord | None:
        """The run an overlap policy applies to: with ONE_THREAD the thread's
        active run, else the run of the schedule's latest started firing,
        when it is active (pending or running)."""
        if schedule.thread_policy is ThreadPolicy.ONE_THREAD:
            runs, _ = await self._runs.list_runs(thread_key, namespace=schedule.namespace, limit=1)
            run = runs[0] if runs else None
        else:
            last = await self._schedules.last_started(schedule.namespace, schedule.schedule_id)
            run = None
            if last is not None:
                with contextlib.suppress(ServiceError):  # the run was deleted
                    run = await self._runs.get_run(last.run_id)
        return run if run is not None and run.state.active else None

    async def is_blocked(self, firing: FiringRecord) -> bool:
        """Whether a waiting firing still waits on an active run (a read
        only, so that replicas looking for work write nothing meanwhile)."""
        schedule = await self._schedules.get(firing.namespace, firing.schedule_id)
        if schedule is None:
            return True  # gone: nothing to start
        thread_key = namespaces.scoped(schedule.namespace, schedule.thread_of(firing.firing_id))
        return await self._active_run(schedule, thread_key) is not None

    async def _blocked(
        self, schedule: ScheduleRecord, firing: FiringRecord, run_id: str
    ) -> FiringRecord:
        """A firing that meets an active run, under SKIP or QUEUE."""
        run = f"run {run_id}" if run_id else "the thread's active run"
        if schedule.overlap_policy is OverlapPolicy.QUEUE:
            waiting = await self._schedules.first_waiting(schedule.namespace, schedule.schedule_id)
            if waiting is None or waiting.firing_id == firing.firing_id:
                return await self._settle(
                    firing,
                    FiringState.WAITING,
                    message=f"waits for {run} to end",
                    released=True,
                )
            message = f"firing {waiting.firing_id} already waits for {run}"
        else:
            message = f"{run} is still active"
        return await self._settle(firing, FiringState.SKIPPED, message=message)

    async def _settle(
        self,
        firing: FiringRecord,
        state: FiringState,
        *,
        run_id: str = "",
        thread_id: str = "",
        message: str = "",
        released: bool = False,
    ) -> FiringRecord:
        """Record what came of a firing; an open one `released` may be taken
        by any replica at once."""
        settled = replace(
            firing,
            state=state,
            run_id=run_id,
            thread_id=thread_id,
            message=message,
            claimed_by="" if released or not state.open else firing.claimed_by,
            claim_until=0.0 if released or not state.open else firing.claim_until,
        )
        if not await self._schedules.settle(settled, claimed_by=firing.claimed_by):
            log.warning("schedule %s: firing taken over before it settled", _name(firing))
            return firing
        self._runs.metrics.schedule_firings.labels(
            namespace=firing.namespace, outcome=state.value
        ).inc()
        log.info(
            "schedule %s: firing %s %s %s",
            _name(firing),
            firing.firing_id,
            state.value,
            run_id or message,
        )
        return settled


def _name(firing: FiringRecord) -> str:
    return namespaces.display(namespaces.scoped(firing.namespace, firing.schedule_id))
