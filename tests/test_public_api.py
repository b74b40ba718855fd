"""The public names of the SDK, pinned: changing them is an API change."""

from __future__ import annotations

import cairn


def test_public_names_are_pinned() -> None:
    assert sorted(cairn.__all__) == [
        "AlreadyExistsError",
        "CairnError",
        "ChildInterrupted",
        "Client",
        "Command",
        "CompiledStateGraph",
        "ConnectedWorker",
        "Durability",
        "END",
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
        "START",
        "SearchItem",
        "SearchOp",
        "Send",
        "Session",
        "StateGraph",
        "StateSnapshot",
        "Store",
        "StreamMode",
        "SyncClient",
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
    for name in cairn.__all__:
        assert hasattr(cairn, name), name


def test_control_flow_signals_escape_except_exception() -> None:
    assert not issubclass(cairn.GraphInterrupt, Exception)
    assert not issubclass(cairn.ChildInterrupted, Exception)
    assert issubclass(cairn.ThreadBusyError, cairn.CairnError)
