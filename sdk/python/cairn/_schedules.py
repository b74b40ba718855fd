"""`client.schedules`: runs started by the service on a cron expression or
an interval (ScheduleService).

    schedule = await client.schedules.create(
        "daily_digest", {"inbox": "ada"}, cron="0 8 * * MON-FRI", time_zone="Europe/Paris"
    )
    await client.schedules.trigger(schedule.schedule_id)  # once now, too
    await client.schedules.pause(schedule.schedule_id)
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from cairn._types import _duration, _time
from cairn._values import enum_table, struct_to_json, to_json, to_struct, to_value
from cairn.v1 import schedule_pb2
from cairn.v1 import schedule_service_pb2 as pb

_PAGE = 200


class ScheduleThreadPolicy(enum.StrEnum):
    """Which thread each firing runs on."""

    NEW_THREAD = "new_thread"
    """A thread of its own per firing, `<schedule_id>-<firing_id>`."""
    ONE_THREAD = "one_thread"
    """One thread for every firing (`thread_id`), so each run sees the last."""


class ScheduleOverlapPolicy(enum.StrEnum):
    """What a firing does while an earlier firing's run is still active."""

    SKIP = "skip"
    QUEUE = "queue"
    """Start once the active run ends (at most one firing waits)."""
    CANCEL_PREVIOUS = "cancel_previous"


class ScheduleCatchupPolicy(enum.StrEnum):
    """What due times missed while the service was down do."""

    SKIP = "skip"
    LATEST = "latest"
    """The latest missed due time fires once when the service is back."""


class ScheduleFiringState(enum.StrEnum):
    PENDING = "pending"
    WAITING = "waiting"
    STARTED = "started"
    SKIPPED = "skipped"
    FAILED = "failed"


_THREAD_POLICY = enum_table(schedule_pb2.ScheduleThreadPolicy, ScheduleThreadPolicy)
_OVERLAP_POLICY = enum_table(schedule_pb2.ScheduleOverlapPolicy, ScheduleOverlapPolicy)
_CATCHUP_POLICY = enum_table(schedule_pb2.ScheduleCatchupPolicy, ScheduleCatchupPolicy)
_FIRING_STATE = enum_table(schedule_pb2.ScheduleFiringState, ScheduleFiringState)


def _number(table: dict[Any, Any], value: Any) -> Any:
    return {v: k for k, v in table.items()}[value]


@dataclass(frozen=True, slots=True)
class ScheduleFiring:
    """One firing of a schedule and the run it started (times in UTC)."""

    firing_id: str
    state: ScheduleFiringState
    due_at: datetime | None = None
    fired_at: datetime | None = None
    run_id: str = ""
    thread_id: str = ""
    message: str = ""
    """Why it was skipped or failed."""
    triggered: bool = False

    @classmethod
    def _from_proto(cls, message: schedule_pb2.ScheduleFiring) -> ScheduleFiring:
        return cls(
            firing_id=message.firing_id,
            state=_FIRING_STATE[message.state],
            due_at=_time(message.due_time),
            fired_at=_time(message.fire_time),
            run_id=message.run_id,
            thread_id=message.thread_id,
            message=message.message,
            triggered=message.triggered,
        )


@dataclass(frozen=True, slots=True)
class Schedule:
    """A schedule as the service holds it (times in UTC)."""

    schedule_id: str
    target: str
    cron: str | None = None
    interval: timedelta | None = None
    time_zone: str = ""
    input: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    thread_policy: ScheduleThreadPolicy = ScheduleThreadPolicy.NEW_THREAD
    thread_id: str = ""
    overlap_policy: ScheduleOverlapPolicy = ScheduleOverlapPolicy.SKIP
    catchup_policy: ScheduleCatchupPolicy = ScheduleCatchupPolicy.LATEST
    paused: bool = False
    next_fire_at: datetime | None = None
    """None while paused."""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    recent_firings: tuple[ScheduleFiring, ...] = ()
    """Newest first."""

    @classmethod
    def _from_proto(cls, message: schedule_pb2.Schedule) -> Schedule:
        spec = message.WhichOneof("spec")
        return cls(
            schedule_id=message.schedule_id,
            target=message.target,
            cron=message.cron if spec == "cron" else None,
            interval=message.interval.ToTimedelta() if spec == "interval" else None,
            time_zone=message.time_zone,
            input=to_json(message.input),
            metadata=struct_to_json(message.metadata),
            thread_policy=_THREAD_POLICY[message.thread_policy],
            thread_id=message.thread_id,
            overlap_policy=_OVERLAP_POLICY[message.overlap_policy],
            catchup_policy=_CATCHUP_POLICY[message.catchup_policy],
            paused=message.paused,
            next_fire_at=_time(message.next_fire_time),
            created_at=_time(message.create_time),
            updated_at=_time(message.update_time),
            recent_firings=tuple(map(ScheduleFiring._from_proto, message.recent_firings)),
        )


class _Named(Protocol):
    @property
    def name(self) -> str: ...


Call = Callable[[str, Any], Awaitable[Any]]
"""`call(rpc, request)`: a unary call of ScheduleService, failing over."""


class Schedules:
    """The schedules of the client's namespace (`client.schedules`).

    A schedule's runs are started by the service, not by this process: it
    fires at every due time until paused or deleted, whoever is connected.
    """

    def __init__(self, call: Call) -> None:
        self._call = call

    async def create(
        self,
        target: str | _Named,
        input: Any = None,
        *,
        cron: str | None = None,
        interval: float | timedelta | None = None,
        time_zone: str = "",
        schedule_id: str = "",
        metadata: Mapping[str, Any] | None = None,
        thread_policy: ScheduleThreadPolicy | str = ScheduleThreadPolicy.NEW_THREAD,
        thread_id: str = "",
        overlap_policy: ScheduleOverlapPolicy | str = ScheduleOverlapPolicy.SKIP,
        catchup_policy: ScheduleCatchupPolicy | str = ScheduleCatchupPolicy.LATEST,
        paused: bool = False,
        request_id: str | None = None,
    ) -> Schedule:
        """Create a schedule that runs `target` with `input` at the due times
        of `cron` (five fields or @daily-style nicknames, read in
        `time_zone`, UTC by default) or every `interval` (seconds or a
        timedelta, whole seconds). Raises AlreadyExistsError for a taken
        schedule_id and InvalidArgumentError for a bad spec.

            await client.schedules.create(digest, {"inbox": "ada"}, cron="@daily")
            await client.schedules.create("poll", interval=timedelta(minutes=10))
        """
        request = pb.CreateScheduleRequest(
            schedule_id=schedule_id,
            time_zone=time_zone,
            target=target if isinstance(target, str) else target.name,
            metadata=to_struct(dict(metadata or {})),
            thread_policy=_number(_THREAD_POLICY, ScheduleThreadPolicy(thread_policy)),
            thread_id=thread_id,
            overlap_policy=_number(_OVERLAP_POLICY, ScheduleOverlapPolicy(overlap_policy)),
            catchup_policy=_number(_CATCHUP_POLICY, ScheduleCatchupPolicy(catchup_policy)),
            paused=paused,
            # Generated when not given, so that a retried create returns the
            # schedule the first attempt made.
            request_id=request_id or str(uuid.uuid4()),
        )
        if input is not None:
            request.input.CopyFrom(to_value(input))
        if cron is not None:
            request.cron = cron
        if interval is not None:
            seconds = interval.total_seconds() if isinstance(interval, timedelta) else interval
            request.interval.CopyFrom(_duration(seconds))
        response = await self._call("CreateSchedule", request)
        return Schedule._from_proto(response.schedule)

    async def get(self, schedule_id: str) -> Schedule:
        """A schedule with its next due time and latest firings; raises
        NotFoundError."""
        response = await self._call("GetSchedule", pb.GetScheduleRequest(schedule_id=schedule_id))
        return Schedule._from_proto(response.schedule)

    async def list(self, *, limit: int = 100) -> list[Schedule]:
        """Up to `limit` schedules, by id."""
        found: list[Schedule] = []
        token = ""
        while len(found) < limit:
            request = pb.ListSchedulesRequest(
                page_size=min(_PAGE, limit - len(found)), page_token=token
            )
            response = await self._call("ListSchedules", request)
            found.extend(map(Schedule._from_proto, response.schedules))
            token = response.next_page_token
            if not token:
                break
        return found

    async def pause(self, schedule_id: str) -> Schedule:
        """Stop firing at due times until resumed (trigger still fires)."""
        request = pb.PauseScheduleRequest(schedule_id=schedule_id)
        return Schedule._from_proto((await self._call("PauseSchedule", request)).schedule)

    async def resume(self, schedule_id: str) -> Schedule:
        """Fire again from the next due time; what passed while paused does not fire."""
        request = pb.ResumeScheduleRequest(schedule_id=schedule_id)
        return Schedule._from_proto((await self._call("ResumeSchedule", request)).schedule)

    async def trigger(self, schedule_id: str, *, request_id: str | None = None) -> ScheduleFiring:
        """Fire now, with the schedule's overlap policy; returns the firing
        (with its run_id when it started one)."""
        request = pb.TriggerScheduleRequest(
            schedule_id=schedule_id, request_id=request_id or str(uuid.uuid4())
        )
        return ScheduleFiring._from_proto((await self._call("TriggerSchedule", request)).firing)

    async def delete(self, schedule_id: str) -> None:
        """Delete the schedule and its firings (its runs and threads stay);
        raises NotFoundError."""
        request = pb.DeleteScheduleRequest(schedule_id=schedule_id)
        await self._call("DeleteSchedule", request)


class SyncSchedules:
    """`SyncClient.schedules`: the methods of `Schedules`, without `await`.

    client.schedules.create("digest", {"inbox": "ada"}, cron="0 8 * * *")
    """

    def __init__(
        self, schedules: Schedules, run: Callable[[Coroutine[Any, Any, Any]], Any]
    ) -> None:
        self._schedules = schedules
        self._run = run

    def create(self, target: str | _Named, input: Any = None, **options: Any) -> Schedule:
        """See `Schedules.create`."""
        result: Schedule = self._run(self._schedules.create(target, input, **options))
        return result

    def get(self, schedule_id: str) -> Schedule:
        result: Schedule = self._run(self._schedules.get(schedule_id))
        return result

    def list(self, *, limit: int = 100) -> list[Schedule]:
        result: list[Schedule] = self._run(self._schedules.list(limit=limit))
        return result

    def pause(self, schedule_id: str) -> Schedule:
        result: Schedule = self._run(self._schedules.pause(schedule_id))
        return result

    def resume(self, schedule_id: str) -> Schedule:
        result: Schedule = self._run(self._schedules.resume(schedule_id))
        return result

    def trigger(self, schedule_id: str, *, request_id: str | None = None) -> ScheduleFiring:
        result: ScheduleFiring = self._run(
            self._schedules.trigger(schedule_id, request_id=request_id)
        )
        return result

    def delete(self, schedule_id: str) -> None:
        self._run(self._schedules.delete(schedule_id))
