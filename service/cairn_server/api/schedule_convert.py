"""ScheduleService messages to schedule records and back."""

from __future__ import annotations

import re
from typing import TypeVar

from cairn._values import enum_table
from cairn.v1 import schedule_pb2
from cairn.v1 import schedule_service_pb2 as pb
from cairn_server.api.convert import enum_value, seconds, timestamp
from cairn_server.api.values import check_size, struct_to_json, to_json, to_struct, to_value
from cairn_server.errors import error_for
from cairn_server.schedules import (
    CatchupPolicy,
    FiringRecord,
    FiringState,
    OverlapPolicy,
    ScheduleRecord,
    Spec,
    SpecError,
    ThreadPolicy,
)

P = TypeVar("P")

SCHEDULE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
"""A schedule id: it goes into the ids of its threads and request ids."""

THREAD_POLICY = enum_table(schedule_pb2.ScheduleThreadPolicy, ThreadPolicy)
OVERLAP_POLICY = enum_table(schedule_pb2.ScheduleOverlapPolicy, OverlapPolicy)
CATCHUP_POLICY = enum_table(schedule_pb2.ScheduleCatchupPolicy, CatchupPolicy)
FIRING_STATE = enum_table(schedule_pb2.ScheduleFiringState, FiringState)
FIRING_STATE_PB = {v: k for k, v in FIRING_STATE.items()}
THREAD_POLICY_PB = {v: k for k, v in THREAD_POLICY.items()}
OVERLAP_POLICY_PB = {v: k for k, v in OVERLAP_POLICY.items()}
CATCHUP_POLICY_PB = {v: k for k, v in CATCHUP_POLICY.items()}


def check_id(schedule_id: str) -> str:
    if SCHEDULE_ID.fullmatch(schedule_id) is None:
        raise error_for(
            "INVALID_ARGUMENT",
            f"schedule_id {schedule_id[:140]!r} must be 1 to 128 letters, digits, '.', '_',"
            " ':' or '-'",
            field="schedule_id",
        )
    return schedule_id


def schedule_record(
    request: pb.CreateScheduleRequest, *, namespace: str, schedule_id: str, now: float, limit: int
) -> ScheduleRecord:
    """The schedule a CreateSchedule asks for (its next due time from `now`)."""
    check_id(schedule_id)
    if not request.target:
        raise error_for("INVALID_ARGUMENT", "target is required", field="target")
    interval = seconds(request.interval, 0.0, "interval")
    try:
        spec = Spec.parse(
            cron=request.cron, interval=interval, time_zone=request.time_zone, anchor=now
        )
    except SpecError as error:
        raise error_for("INVALID_ARGUMENT", str(error), field=error.field) from None
    thread_policy = _policy(THREAD_POLICY, request.thread_policy, "thread_policy")
    thread_id = request.thread_id
    if thread_policy is ThreadPolicy.NEW_THREAD and thread_id:
        raise error_for(
            "INVALID_ARGUMENT",
            "thread_id is for thread_policy ONE_THREAD; NEW_THREAD makes a thread per firing",
            field="thread_id",
        )
    if thread_policy is ThreadPolicy.ONE_THREAD and not thread_id:
        thread_id = f"schedule-{schedule_id}"
    check_size(request.input.ByteSize(), limit, "input")
    check_size(request.metadata.ByteSize(), limit, "metadata")
    return ScheduleRecord(
        namespace=namespace,
        schedule_id=schedule_id,
        spec=spec,
        target=request.target,
        input=to_json(request.input, "input") if request.HasField("input") else None,
        metadata=struct_to_json(request.metadata, "metadata"),
        thread_policy=thread_policy,
        thread_id=thread_id,
        overlap_policy=_policy(OVERLAP_POLICY, request.overlap_policy, "overlap_policy"),
        catchup_policy=_policy(CATCHUP_POLICY, request.catchup_policy, "catchup_policy"),
        paused=request.paused,
        next_fire_at=spec.next_after(now),
        created_at=now,
        updated_at=now,
        request_id=request.request_id,
    )


def _policy(table: dict[int, P], number: int, field: str) -> P:
    """The policy of an enum number; the first value (the default) for 0."""
    return enum_value(table, number or 1, field)


def schedule_pb(record: ScheduleRecord) -> schedule_pb2.Schedule:
    message = schedule_pb2.Schedule(
        schedule_id=record.schedule_id,
        time_zone=record.spec.time_zone,
        target=record.target,
        input=to_value(record.input),
        metadata=to_struct(record.metadata),
        thread_policy=THREAD_POLICY_PB[record.thread_policy],
        thread_id=record.thread_id,
        overlap_policy=OVERLAP_POLICY_PB[record.overlap_policy],
        catchup_policy=CATCHUP_POLICY_PB[record.catchup_policy],
        paused=record.paused,
        create_time=timestamp(record.created_at),
        update_time=timestamp(record.updated_at),
        recent_firings=[firing_pb(f) for f in record.recent_firings],
    )
    if record.spec.cron:
        message.cron = record.spec.cron
    else:
        message.interval.FromSeconds(int(record.spec.interval))
    if not record.paused:
        message.next_fire_time.CopyFrom(timestamp(record.next_fire_at))
    return message


def firing_pb(firing: FiringRecord) -> schedule_pb2.ScheduleFiring:
    return schedule_pb2.ScheduleFiring(
        firing_id=firing.firing_id,
        due_time=timestamp(firing.due_at),
        fire_time=timestamp(firing.fired_at),
        state=FIRING_STATE_PB[firing.state],
        run_id=firing.run_id,
        thread_id=firing.thread_id,
        message=firing.message,
        triggered=firing.triggered,
    )
