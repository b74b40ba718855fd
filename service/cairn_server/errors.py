"""Errors the service reports to its callers.

Every error carries an ErrorReason name (see protos/cairn/v1/errors.proto);
`api/errors.py` maps the reason to a gRPC status code and a
google.rpc.ErrorInfo detail.

    ServiceError
    ├── InvalidArgument        INVALID_ARGUMENT
    ├── NotFound               NOT_FOUND
    ├── AlreadyExists          ALREADY_EXISTS
    ├── FailedPrecondition     FAILED_PRECONDITION
    ├── Unauthenticated        UNAUTHENTICATED
    ├── PermissionDenied       PERMISSION_DENIED
    ├── ResourceExhausted      RESOURCE_EXHAUSTED
    ├── Unavailable            UNAVAILABLE
    └── Unimplemented          UNIMPLEMENTED
"""

from __future__ import annotations


class ServiceError(Exception):
    """An error with an ErrorReason name and the offending ids."""

    code = "INTERNAL"

    def __init__(self, reason: str, message: str, **metadata: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.metadata = metadata


class InvalidArgument(ServiceError):
    code = "INVALID_ARGUMENT"


class NotFound(ServiceError):
    code = "NOT_FOUND"


class AlreadyExists(ServiceError):
    code = "ALREADY_EXISTS"


class FailedPrecondition(ServiceError):
    code = "FAILED_PRECONDITION"


class Unauthenticated(ServiceError):
    code = "UNAUTHENTICATED"


class PermissionDenied(ServiceError):
    code = "PERMISSION_DENIED"


class ResourceExhausted(ServiceError):
    code = "RESOURCE_EXHAUSTED"


class Unavailable(ServiceError):
    code = "UNAVAILABLE"


class Unimplemented(ServiceError):
    code = "UNIMPLEMENTED"


_BY_REASON: dict[str, type[ServiceError]] = {
    "INVALID_ARGUMENT": InvalidArgument,
    "AMBIGUOUS_RESUME": InvalidArgument,
    "MALFORMED_REQUEST": InvalidArgument,
    "JSON_TOO_DEEP": InvalidArgument,
    "ID_TOO_LONG": InvalidArgument,
    "INVALID_NAMESPACE": InvalidArgument,
    "UNAUTHENTICATED": Unauthenticated,
    "PERMISSION_DENIED": PermissionDenied,
    "THREAD_NOT_FOUND": NotFound,
    "TARGET_NOT_FOUND": NotFound,
    "RUN_NOT_FOUND": NotFound,
    "NAMESPACE_NOT_FOUND": NotFound,
    "CHECKPOINT_NOT_FOUND": NotFound,
    "INTERRUPT_NOT_FOUND": NotFound,
    "SCHEDULE_NOT_FOUND": NotFound,
    "THREAD_ALREADY_EXISTS": AlreadyExists,
    "REQUEST_ID_REUSED": AlreadyExists,
    "SCHEDULE_ALREADY_EXISTS": AlreadyExists,
    "THREAD_BUSY": FailedPrecondition,
    "NO_PENDING_INTERRUPT": FailedPrecondition,
    "NOTHING_TO_RESUME": FailedPrecondition,
    "TASK_NOT_HELD": FailedPrecondition,
    "HELLO_REQUIRED": FailedPrecondition,
    "RUN_FINISHED": FailedPrecondition,
    "NOT_A_GRAPH": FailedPrecondition,
    "LANGGRAPH_THREAD": FailedPrecondition,
    "UNSUPPORTED": Unimplemented,
    "PAYLOAD_TOO_LARGE": ResourceExhausted,
    "RATE_LIMITED": ResourceExhausted,
    "TOO_MANY_RUNS": ResourceExhausted,
    "TOO_MANY_WORKERS": ResourceExhausted,
    "SHUTTING_DOWN": Unavailable,
    "STORE_UNAVAILABLE": Unavailable,
    "CANCEL_PENDING": Unavailable,
}


def error_for(reason: str, message: str, **metadata: str) -> ServiceError:
    """The ServiceError subclass that matches `reason`."""
    return _BY_REASON.get(reason, ServiceError)(reason, message, **metadata)
