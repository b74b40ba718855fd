"""Cairn Python SDK: durable LangGraph-style workflows on the Cairn service.

    from cairn import Client, Command, Worker, entrypoint, interrupt, task
    from cairn import END, START, StateGraph

Workers serve `@task` and `@entrypoint` functions and compiled `StateGraph`s;
clients run them on threads with `Client.invoke`, `Client.stream` or
`Client.session`.
"""

# First, before anything imports grpc: quiets the C core's INFO lines.
from cairn import _grpc_logs  # noqa: F401  # isort: skip
from cairn._client import Client, Session
from cairn._connected import ConnectedWorker
from cairn._context import (
    ChildInterrupted,
    GraphInterrupt,
    TaskFuture,
    get_heartbeat_details,
    get_previous_state,
    get_store,
    get_stream_writer,
    heartbeat,
    interrupt,
)
from cairn._credentials import TlsConfig
from cairn._errors import (
    AlreadyExistsError,
    CairnError,
    FailedPreconditionError,
    InterruptTimeoutError,
    InvalidArgumentError,
    NonDeterministicError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    RunFailedError,
    RunNotFoundError,
    TaskFailedError,
    TaskTimeoutError,
    ThreadBusyError,
    ThreadNotFoundError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from cairn._functional import Final, Task, entrypoint, remote_task, task
from cairn._graph import (
    END,
    START,
    CompiledStateGraph,
    StateGraph,
    add_messages,
    append,
    merge,
)
from cairn._messages import write_message_chunk
from cairn._schedules import (
    Schedule,
    ScheduleCatchupPolicy,
    ScheduleFiring,
    ScheduleFiringState,
    ScheduleOverlapPolicy,
    Schedules,
    ScheduleThreadPolicy,
    SyncSchedules,
)
from cairn._sleep import sleep, sleep_until
from cairn._store import Store
from cairn._store_types import (
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchItem,
    SearchOp,
)
from cairn._sync import SyncClient
from cairn._types import (
    Command,
    Durability,
    ErrorDetails,
    Interrupt,
    MultitaskStrategy,
    PregelTask,
    RetryPolicy,
    Run,
    RunEvent,
    RunState,
    RunWaiting,
    Send,
    StateSnapshot,
    StreamMode,
    TaskTimeouts,
    Thread,
    ThreadStatus,
    WaitReason,
)
from cairn._values import JsonTooDeepError
from cairn._version import __version__
from cairn._worker import Worker

__all__ = [
    "END",
    "START",
    "AlreadyExistsError",
    "CairnError",
    "ChildInterrupted",
    "Client",
    "Command",
    "CompiledStateGraph",
    "ConnectedWorker",
    "Durability",
    "ErrorDetails",
    "FailedPreconditionError",
    "Final",
    "GetOp",
    "GraphInterrupt",
    "Interrupt",
    "InterruptTimeoutError",
    "InvalidArgumentError",
    "Item",
    "JsonTooDeepError",
    "ListNamespacesOp",
    "MatchCondition",
    "MultitaskStrategy",
    "NonDeterministicError",
    "NotFoundError",
    "PermissionDeniedError",
    "PregelTask",
    "PutOp",
    "ResourceExhaustedError",
    "RetryPolicy",
    "Run",
    "RunEvent",
    "RunFailedError",
    "RunNotFoundError",
    "RunState",
    "RunWaiting",
    "Schedule",
    "ScheduleCatchupPolicy",
    "ScheduleFiring",
    "ScheduleFiringState",
    "ScheduleOverlapPolicy",
    "ScheduleThreadPolicy",
    "Schedules",
    "SearchItem",
    "SearchOp",
    "Send",
    "Session",
    "StateGraph",
    "StateSnapshot",
    "Store",
    "StreamMode",
    "SyncClient",
    "SyncSchedules",
    "Task",
    "TaskFailedError",
    "TaskFuture",
    "TaskTimeoutError",
    "TaskTimeouts",
    "Thread",
    "ThreadBusyError",
    "ThreadNotFoundError",
    "ThreadStatus",
    "TlsConfig",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "WaitReason",
    "Worker",
    "__version__",
    "add_messages",
    "append",
    "entrypoint",
    "get_heartbeat_details",
    "get_previous_state",
    "get_store",
    "get_stream_writer",
    "heartbeat",
    "interrupt",
    "merge",
    "remote_task",
    "sleep",
    "sleep_until",
    "task",
    "write_message_chunk",
]
