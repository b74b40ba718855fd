"""Errors raised by the SDK.

    CairnError                      any error reported by the service
    ├── InvalidArgumentError        INVALID_ARGUMENT (bad input, AMBIGUOUS_RESUME)
    │   └── JsonTooDeepError        JSON_TOO_DEEP (also raised before sending; _values.py)
    ├── NotFoundError               NOT_FOUND
    │   ├── ThreadNotFoundError     THREAD_NOT_FOUND
    │   └── RunNotFoundError        RUN_NOT_FOUND
    ├── AlreadyExistsError          ALREADY_EXISTS
    ├── FailedPreconditionError     FAILED_PRECONDITION
    │   └── ThreadBusyError         THREAD_BUSY
    ├── UnauthenticatedError        UNAUTHENTICATED (no credential, or a bad or expired one)
    ├── PermissionDeniedError       PERMISSION_DENIED (a role too weak in the namespace)
    ├── ResourceExhaustedError      RESOURCE_EXHAUSTED (PAYLOAD_TOO_LARGE)
    ├── UnavailableError            UNAVAILABLE
    └── UnimplementedError          UNIMPLEMENTED
    RunFailedError                  Client.invoke: the run ended FAILED
    TaskFailedError                 inside a workflow: a called task failed
    └── TaskTimeoutError            ... on a timeout of its TaskTimeouts
    NonDeterministicError           a replay called another task than recorded
    InterruptTimeoutError           interrupt(..., timeout=...) got no answer in time

`reason` is the google.rpc.ErrorInfo reason (e.g. "THREAD_BUSY") and
`metadata` its offending ids. Control-flow signals that user code must not
catch (interrupts) derive from BaseException; see `cairn.GraphInterrupt`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc
from google.rpc import error_details_pb2, status_pb2

if TYPE_CHECKING:
    from cairn._types import Run

_DETAILS_KEY = "grpc-status-details-bin"


class CairnError(Exception):
    """An error status from the Cairn service."""

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode = grpc.StatusCode.UNKNOWN,
        reason: str = "",
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.metadata = metadata or {}


class InvalidArgumentError(CairnError):
    pass


class NotFoundError(CairnError):
    pass


class ThreadNotFoundError(NotFoundError):
    pass


class RunNotFoundError(NotFoundError):
    pass


class AlreadyExistsError(CairnError):
    pass


class FailedPreconditionError(CairnError):
    pass


class ThreadBusyError(FailedPreconditionError):
    pass


class UnauthenticatedError(CairnError):
    """The server does not accept the call's credential: none was given (pass
    `token=` or `api_key=`, or set CAIRN_TOKEN or CAIRN_API_KEY), or it is
    unknown, badly signed or expired."""


class PermissionDeniedError(CairnError):
    """The caller's grants in the call's namespace do not include the role
    the call needs (e.g. a `reader` that cancels a run). Ids in namespaces the
    caller holds no grant in raise NotFoundError instead."""


class ResourceExhaustedError(CairnError):
    pass


class UnavailableError(CairnError):
    pass


class UnimplementedError(CairnError):
    pass


class RunFailedError(Exception):
    """`Client.invoke` on a run that ended FAILED; `run.error` has the cause."""

    def __init__(self, run: Run) -> None:
        error = run.error
        super().__init__(f"{error.type}: {error.message}" if error else "run failed")
        self.run = run


class TaskFailedError(Exception):
    """Raised inside a workflow when a task it called failed for good.
    `type` is the name of the task's exception, in the task's language."""

    def __init__(self, type: str, message: str, *, traceback: str = "") -> None:
        super().__init__(f"{type}: {message}")
        self.type = type
        self.message = message
        self.remote_traceback = traceback


class TaskTimeoutError(TaskFailedError):
    """Raised inside a workflow when a task it called failed on a timeout
    the service enforces (`TaskTimeouts`): `timeout` is "schedule_to_start"
    (no worker took it) or "start_to_close" (its last attempt ran too long)."""

    def __init__(
        self, message: str, *, timeout: str = "", task_name: str = "", traceback: str = ""
    ) -> None:
        super().__init__("TaskTimeoutError", message, traceback=traceback)
        self.timeout = timeout
        self.task_name = task_name


class NonDeterministicError(Exception):
    """A replay called a different task than the one recorded at that position."""


class InterruptTimeoutError(Exception):
    """Raised by `interrupt(value, timeout=...)` called without a `default`
    when no resume answered it in time: the service resumed the run itself.
    Catch it to go on without the answer; uncaught, the task fails with type
    "InterruptTimeoutError"."""


_BY_CODE: dict[grpc.StatusCode, type[CairnError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.UNIMPLEMENTED: UnimplementedError,
}
_BY_REASON: dict[str, type[CairnError]] = {
    "THREAD_NOT_FOUND": ThreadNotFoundError,
    "RUN_NOT_FOUND": RunNotFoundError,
    "THREAD_BUSY": ThreadBusyError,
}


def error_info(error: grpc.aio.AioRpcError | grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The google.rpc.ErrorInfo detail of an error status, if any."""
    trailing: Any = error.trailing_metadata() or ()
    for key, value in trailing:
        if key != _DETAILS_KEY:
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return info
    return None


def from_rpc_error(error: grpc.aio.AioRpcError) -> CairnError:
    """The typed CairnError for a failed call."""
    info = error_info(error)
    reason = info.reason if info else ""
    metadata = dict(info.metadata) if info else {}
    cls = _BY_REASON.get(reason) or _BY_CODE.get(error.code(), CairnError)
    return cls(error.details() or "", code=error.code(), reason=reason, metadata=metadata)
