"""ScheduleService: schedules of the caller's namespace (DESIGN.md 8.2); a
schedule of another namespace is SCHEDULE_NOT_FOUND, as one that does not
exist."""

from __future__ import annotations

import hashlib
from typing import Any

from cairn.v1 import schedule_service_pb2 as pb
from cairn.v1 import schedule_service_pb2_grpc
from cairn_server.api import scope
from cairn_server.api.errors import unary
from cairn_server.api.schedule_convert import check_id, firing_pb, schedule_pb, schedule_record
from cairn_server.api.threads import page_size
from cairn_server.errors import error_for
from cairn_server.ids import new_id
from cairn_server.schedules import FiringRecord, SchedulePoller, ScheduleRecord, ScheduleStore


class ScheduleServicer(schedule_service_pb2_grpc.ScheduleServiceServicer):
    def __init__(
        self, schedules: ScheduleStore, poller: SchedulePoller, *, max_payload_bytes: int
    ) -> None:
        self._schedules = schedules
        self._poller = poller
        self._limit = max_payload_bytes

    def _now(self) -> float:
        return self._poller.clock()

    async def _get(self, schedule_id: str) -> ScheduleRecord:
        record = await self._schedules.get(scope.namespace(), check_id(schedule_id))
        if record is None:
            raise _not_found(schedule_id)
        return record

    @unary
    async def CreateSchedule(
        self, request: pb.CreateScheduleRequest, context: Any
    ) -> pb.CreateScheduleResponse:
        record = schedule_record(
            request,
            namespace=scope.namespace(),
            schedule_id=request.schedule_id or new_id(),
            now=self._now(),
            limit=self._limit,
        )
        created, stored = await self._schedules.create(record)
        if not created and not (request.request_id and stored.request_id == request.request_id):
            raise error_for(
                "SCHEDULE_ALREADY_EXISTS",
                f"schedule {record.schedule_id!r} already exists",
                schedule_id=record.schedule_id,
            )
        self._poller.wake()
        return pb.CreateScheduleResponse(schedule=schedule_pb(stored))

    @unary
    async def GetSchedule(
        self, request: pb.GetScheduleRequest, context: Any
    ) -> pb.GetScheduleResponse:
        return pb.GetScheduleResponse(schedule=schedule_pb(await self._get(request.schedule_id)))

    @unary
    async def ListSchedules(
        self, request: pb.ListSchedulesRequest, context: Any
    ) -> pb.ListSchedulesResponse:
        page, token = await self._schedules.list_page(
            scope.namespace(), limit=page_size(request.page_size), after=request.page_token
        )
        return pb.ListSchedulesResponse(
            schedules=[schedule_pb(s) for s in page], next_page_token=token
        )

    @unary
    async def PauseSchedule(
        self, request: pb.PauseScheduleRequest, context: Any
    ) -> pb.PauseScheduleResponse:
        return pb.PauseScheduleResponse(schedule=schedule_pb(await self._pause(request, True)))

    @unary
    async def ResumeSchedule(
        self, request: pb.ResumeScheduleRequest, context: Any
    ) -> pb.ResumeScheduleResponse:
        record = await self._pause(request, False)
        self._poller.wake()
        return pb.ResumeScheduleResponse(schedule=schedule_pb(record))

    async def _pause(
        self, request: pb.PauseScheduleRequest | pb.ResumeScheduleRequest, paused: bool
    ) -> ScheduleRecord:
        record = await self._get(request.schedule_id)
        if record.paused != paused:
            now = self._now()
            # A resumed schedule starts from its next due time: what passed
            # while it was paused does not fire.
            next_fire_at = record.next_fire_at if paused else record.spec.next_after(now)
            key = (record.namespace, record.schedule_id)
            if not await self._schedules.set_paused(
                *key, paused=paused, next_fire_at=next_fire_at, now=now
            ):
                raise _not_found(record.schedule_id)
            record = await self._get(record.schedule_id)
        return record

    @unary
    async def TriggerSchedule(
        self, request: pb.TriggerScheduleRequest, context: Any
    ) -> pb.TriggerScheduleResponse:
        record = await self._get(request.schedule_id)
        now = self._now()
        firings = self._poller.firings
        firing = FiringRecord(
            namespace=record.namespace,
            schedule_id=record.schedule_id,
            firing_id=f"trigger-{_short(request.request_id) or new_id()}",
            due_at=now,
            fired_at=now,
            triggered=True,
            claimed_by=firings.replica_id,
            claim_until=firings.claim_until(),
        )
        created, firing = await self._schedules.add_firing(firing)
        if created:
            firing = await firings.act(firing)
        return pb.TriggerScheduleResponse(firing=firing_pb(firing))

    @unary
    async def DeleteSchedule(
        self, request: pb.DeleteScheduleRequest, context: Any
    ) -> pb.DeleteScheduleResponse:
        schedule_id = check_id(request.schedule_id)
        if not await self._schedules.delete(scope.namespace(), schedule_id):
            raise _not_found(schedule_id)
        return pb.DeleteScheduleResponse()


def _short(request_id: str) -> str:
    """A request_id short enough for the ids of a firing's thread and run."""
    if len(request_id) <= 64:
        return request_id
    return hashlib.sha256(request_id.encode()).hexdigest()[:32]


def _not_found(schedule_id: str) -> Exception:
    return error_for(
        "SCHEDULE_NOT_FOUND", f"schedule {schedule_id!r} does not exist", schedule_id=schedule_id
    )
