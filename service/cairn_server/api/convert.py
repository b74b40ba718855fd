"""Domain records to protocol messages and back."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeVar

from google.protobuf import duration_pb2, timestamp_pb2

from cairn._values import enum_table
from cairn.v1 import errors_pb2, run_pb2, thread_pb2
from cairn_server import namespaces
from cairn_server.api.message_sizes import FIELD_OVERHEAD
from cairn_server.api.values import struct_to_json, to_json, to_struct, to_value
from cairn_server.domain import (
    Durability,
    ErrorRecord,
    EventRecord,
    InterruptRecord,
    MultitaskStrategy,
    RetryPolicy,
    RunRecord,
    RunState,
    StreamMode,
    TaskTimeouts,
    ThreadRecord,
    ThreadStatus,
    WaitReason,
    WaitRecord,
    run_from_json,
)
from cairn_server.engine.state import StateView
from cairn_server.errors import error_for

DURABILITY = enum_table(run_pb2.Durability, Durability)
DURABILITY_PB = {v: k for k, v in DURABILITY.items()}
MULTITASK_STRATEGY = enum_table(run_pb2.MultitaskStrategy, MultitaskStrategy)
RUN_STATE = enum_table(run_pb2.RunState, RunState)
RUN_STATE_PB = {v: k for k, v in RUN_STATE.items()}
STREAM_MODE = enum_table(run_pb2.StreamMode, StreamMode)
STREAM_MODE_PB = {v: k for k, v in STREAM_MODE.items()}
THREAD_STATUS = enum_table(thread_pb2.ThreadStatus, ThreadStatus)
THREAD_STATUS_PB = {v: k for k, v in THREAD_STATUS.items()}
WAIT_REASON_PB = {v: k for k, v in enum_table(run_pb2.WaitReason, WaitReason).items()}


E = TypeVar("E")


def enum_value(table: Mapping[Any, E], number: int, field: str) -> E:
    """The domain enum for a protocol enum number; INVALID_ARGUMENT if unknown."""
    try:
        return table[number]
    except KeyError:
        raise error_for("INVALID_ARGUMENT", f"{field} has no value {number}", field=field) from None


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


_TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)
"""google.protobuf.Timestamp's documented range (years 1 to 9999)."""


def is_timestamp(seconds: float) -> bool:
    """Whether a Timestamp can hold `seconds` since the epoch."""
    low, high = _TIMESTAMP_SECONDS
    return low <= seconds <= high


def time_of(stamp: timestamp_pb2.Timestamp, field: str) -> float:
    """The time in seconds since the epoch; out of range: INVALID_ARGUMENT."""
    low, high = _TIMESTAMP_SECONDS
    if not low <= stamp.seconds <= high or not 0 <= stamp.nanos < 10**9:
        raise error_for("INVALID_ARGUMENT", f"{field} must be a valid timestamp", field=field)
    return stamp.seconds + stamp.nanos / 1e9


_MAX_DURATION_SECONDS = 315_576_000_000
"""google.protobuf.Duration's documented range (10,000 years)."""

D = TypeVar("D", float, float | None)


def seconds(duration: duration_pb2.Duration, default: D, field: str) -> float | D:
    """The duration in seconds, `default` when it is zero (unset); a negative
    or out-of-range duration is refused with INVALID_ARGUMENT."""
    if not 0 <= duration.seconds <= _MAX_DURATION_SECONDS or not 0 <= duration.nanos < 10**9:
        raise error_for("INVALID_ARGUMENT", f"{field} must be a valid duration >= 0", field=field)
    if duration.seconds == 0 and duration.nanos == 0:
        return default
    return duration.seconds + duration.nanos / 1e9


def retry_policy(message: run_pb2.RetryPolicy) -> RetryPolicy:
    """Unset fields take LangGraph's defaults; a negative, NaN or infinite
    field is refused with INVALID_ARGUMENT."""
    defaults = RetryPolicy()
    factor = message.backoff_factor
    if not math.isfinite(factor) or factor < 0:
        raise error_for(
            "INVALID_ARGUMENT",
            f"retry_policy.backoff_factor must be a finite number >= 0, got {factor}",
            field="retry_policy.backoff_factor",
        )
    if message.max_attempts < 0:
        raise error_for(
            "INVALID_ARGUMENT",
            f"retry_policy.max_attempts must not be negative, got {message.max_attempts}",
            field="retry_policy.max_attempts",
        )
    return RetryPolicy(
        initial_interval=seconds(
            message.initial_interval, defaults.initial_interval, "retry_policy.initial_interval"
        ),
        backoff_factor=message.backoff_factor or defaults.backoff_factor,
        max_interval=seconds(
            message.max_interval, defaults.max_interval, "retry_policy.max_interval"
        ),
        max_attempts=message.max_attempts or defaults.max_attempts,
        jitter=message.jitter,
    )


def retry_policy_pb(policy: RetryPolicy) -> run_pb2.RetryPolicy:
    message = run_pb2.RetryPolicy(
        backoff_factor=policy.backoff_factor, max_attempts=policy.max_attempts, jitter=policy.jitter
    )
    message.initial_interval.FromNanoseconds(round(policy.initial_interval * 1e9))
    message.max_interval.FromNanoseconds(round(policy.max_interval * 1e9))
    return message


_TIMEOUT_FIELDS = ("schedule_to_start", "start_to_close", "heartbeat")


def task_timeouts(message: run_pb2.TaskTimeouts, field: str) -> TaskTimeouts:
    """Unset or zero durations mean no limit; a negative one is refused
    with INVALID_ARGUMENT."""
    values = {
        name: seconds(getattr(message, f"{name}_timeout"), None, f"{field}.{name}_timeout")
        for name in _TIMEOUT_FIELDS
    }
    return TaskTimeouts(**values)


def task_timeouts_pb(timeouts: TaskTimeouts) -> run_pb2.TaskTimeouts:
    message = run_pb2.TaskTimeouts()
    for name in _TIMEOUT_FIELDS:
        seconds = getattr(timeouts, name)
        if seconds is not None:
            getattr(message, f"{name}_timeout").FromNanoseconds(round(seconds * 1e9))
    return message


def error_pb(error: ErrorRecord) -> errors_pb2.TaskError:
    message = errors_pb2.TaskError(
        type=error.type,
        message=error.message,
        retryable=error.retryable,
        traceback=error.traceback,
    )
    if error.details:
        message.details.CopyFrom(to_struct(error.details))
    return message


def error_record(message: errors_pb2.TaskError) -> ErrorRecord:
    return ErrorRecord(
        type=message.type or "Error",
        message=message.message,
        retryable=message.retryable,
        traceback=message.traceback,
        details=struct_to_json(message.details, "error.details")
        if message.details.fields
        else None,
    )


def interrupt_pb(interrupt: InterruptRecord) -> run_pb2.Interrupt:
    message = run_pb2.Interrupt(
        id=interrupt.id,
        value=to_value(interrupt.value),
        task_id=interrupt.task_id,
        task_name=interrupt.task_name,
        index=interrupt.index,
    )
    if interrupt.timeout_at is not None:
        message.timeout_time.CopyFrom(timestamp(interrupt.timeout_at))
        if interrupt.has_default:
            to_value(interrupt.default, message.timeout_default)
    return message


def thread_pb(thread: ThreadRecord) -> thread_pb2.Thread:
    return thread_pb2.Thread(
        thread_id=namespaces.unscoped(thread.thread_id),
        create_time=timestamp(thread.created_at),
        update_time=timestamp(thread.updated_at),
        metadata=to_struct(thread.metadata),
        status=THREAD_STATUS_PB[thread.status],
    )


def checkpoint_ref(thread_id: str, checkpoint_id: str | None) -> run_pb2.CheckpointRef | None:
    if not checkpoint_id:
        return None
    return run_pb2.CheckpointRef(
        thread_id=namespaces.unscoped(thread_id), checkpoint_id=checkpoint_id
    )


def waiting_pb(waiting: WaitRecord) -> run_pb2.RunWaiting:
    message = run_pb2.RunWaiting(
        reason=WAIT_REASON_PB[waiting.reason],
        task_id=waiting.task_id,
        task_name=waiting.task_name,
        since_time=timestamp(waiting.since),
        namespace=list(waiting.namespace),
    )
    if waiting.until is not None:
        message.until_time.CopyFrom(timestamp(waiting.until))
    return message


def run_pb(run: RunRecord) -> run_pb2.Run:
    message = run_pb2.Run(
        run_id=run.run_id,
        thread_id=namespaces.unscoped(run.thread_id),
        target=run.target,
        state=RUN_STATE_PB[run.state],
        durability=DURABILITY_PB[run.durability],
        create_time=timestamp(run.created_at),
        update_time=timestamp(run.updated_at),
        metadata=to_struct(run.metadata),
        interrupts=[interrupt_pb(i) for i in run.interrupts],
        checkpoint=checkpoint_ref(run.thread_id, run.checkpoint_id),
        stream_modes=[STREAM_MODE_PB[m] for m in run.stream_modes],
        waiting=[waiting_pb(w) for w in run.waiting],
    )
    if run.has_output:
        message.output.CopyFrom(to_value(run.output))
    if run.error is not None:
        message.error.CopyFrom(error_pb(run.error))
    return message


def event_pb(event: EventRecord) -> run_pb2.RunEvent:
    message = run_pb2.RunEvent(
        event_id=event.event_id, run_id=event.run_id, create_time=timestamp(event.created_at)
    )
    payload = event.payload
    if event.kind == "run":
        message.run.CopyFrom(run_pb(run_from_json(payload)))
    else:
        message.chunk.mode = STREAM_MODE_PB[StreamMode(payload["mode"])]
        to_value(payload["data"], message.chunk.data)
        message.chunk.namespace.extend(payload.get("namespace", []))
    return message


def state_pb(
    view: StateView, *, first_task: int = 0, budget: int | None = None
) -> tuple[thread_pb2.StateSnapshot, int | None]:
    """The snapshot with the view's tasks from `first_task` on, as many as
    keep it within `budget` bytes (at least one); and the index of the first
    task left out, or None when none is."""
    checkpoint = view.checkpoint
    snapshot = thread_pb2.StateSnapshot(
        next=view.next,
        interrupts=[interrupt_pb(i) for i in view.interrupts],
    )
    if checkpoint is None:
        to_value(None, snapshot.values)
        return snapshot, None
    to_value(view.values, snapshot.values)
    snapshot.config.thread_id = namespaces.unscoped(checkpoint.thread_id)
    snapshot.config.checkpoint_id = checkpoint.checkpoint_id
    parent = checkpoint_ref(checkpoint.thread_id, checkpoint.parent_checkpoint_id)
    if parent is not None:
        snapshot.parent_config.CopyFrom(parent)
    snapshot.metadata.CopyFrom(to_struct(checkpoint.metadata))
    snapshot.create_time.CopyFrom(timestamp(checkpoint.created_at))
    size = snapshot.ByteSize()
    for index in range(first_task, len(view.tasks)):
        task = view.tasks[index]
        message = thread_pb2.TaskState(id=task.id, name=task.name, path=list(task.path))
        if task.has_result:
            to_value(task.result, message.result)
        if task.error is not None:
            message.error.CopyFrom(error_pb(task.error))
        message.interrupts.extend(interrupt_pb(i) for i in task.interrupts)
        size += message.ByteSize() + FIELD_OVERHEAD
        if budget is not None and size > budget and snapshot.tasks:
            return snapshot, index
        snapshot.tasks.append(message)
    return snapshot, None


__all__ = ["RUN_STATE", "STREAM_MODE", "THREAD_STATUS", "to_json"]
