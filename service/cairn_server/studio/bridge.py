"""The Studio's only way to the data: calls of the public gRPC API, made
with the browser user's own credential and namespace, turned to and from
proto3 JSON.

The page never reaches the store or the run manager: whatever it shows or
changes went through the same RPCs, roles and namespace checks as grpcurl
or an SDK, on whichever replica the Studio points at.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.message import Message

from cairn._errors import error_info
from cairn.v1 import (
    graph_service_pb2,
    run_service_pb2,
    schedule_service_pb2,
    thread_service_pb2,
    worker_service_pb2,
)

UNARY_METHODS = {
    "ThreadService": ("GetThread", "ListThreads", "GetState", "GetStateHistory", "UpdateState"),
    "RunService": ("GetRun", "ListRuns", "CancelRun"),
    "WorkerService": ("ListWorkers",),
    "GraphService": ("GetGraph",),
    "ScheduleService": ("ListSchedules",),
}
"""What the page may call, per service: reads, and the writes Studio offers
(answering interrupts and forking go through RunService.Stream)."""

_FILES = (
    thread_service_pb2,
    run_service_pb2,
    worker_service_pb2,
    graph_service_pb2,
    schedule_service_pb2,
)

CALL_TIMEOUT = 30.0
"""Seconds a unary call may take before the page is told DEADLINE_EXCEEDED."""

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
"""The HTTP status of each gRPC code (as grpc-gateway maps them); any other
code is 500."""


class CallFailed(Exception):
    """A call the server refused or could not answer, as the page shows it."""

    def __init__(
        self,
        code: str,
        message: str,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
        http_status: int = 500,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.metadata = dict(metadata or {})
        self.http_status = http_status

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "reason": self.reason,
            "metadata": self.metadata,
        }

    @classmethod
    def invalid(cls, message: str) -> CallFailed:
        return cls("INVALID_ARGUMENT", message, "INVALID_ARGUMENT", {}, 400)

    @classmethod
    def from_rpc(cls, error: grpc.aio.AioRpcError) -> CallFailed:
        code = error.code()
        info = error_info(error)
        return cls(
            code.name,
            error.details() or code.name,
            info.reason if info else "",
            dict(info.metadata) if info else {},
            HTTP_STATUS.get(code, 500),
        )


@dataclass(frozen=True, slots=True)
class Method:
    path: str
    request: type[Message]
    response: type[Message]


def _methods() -> dict[str, Method]:
    found: dict[str, Method] = {}
    for file in _FILES:
        for service in file.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                if method.name not in UNARY_METHODS.get(service.name, ()):
                    continue
                found[f"{service.name}/{method.name}"] = Method(
                    f"/{service.full_name}/{method.name}",
                    message_factory.GetMessageClass(method.input_type),
                    message_factory.GetMessageClass(method.output_type),
                )
    return found


METHODS = _methods()


def to_json(message: Message) -> dict[str, Any]:
    """proto3 JSON with the protos' own field names, defaults included, so
    that the page reads `free_task_slots: 0` and empty lists as they are."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def parse(body: Any, request_type: type[Message]) -> Message:
    if not isinstance(body, dict):
        raise CallFailed.invalid("the request body must be a JSON object")
    try:
        return json_format.ParseDict(body, request_type())
    except json_format.ParseError as error:
        raise CallFailed.invalid(f"not a {request_type.DESCRIPTOR.name}: {error}") from None


class Bridge:
    """Calls the API at `target` over `channel` with each caller's metadata.

    Example::

        bridge = Bridge(grpc.aio.insecure_channel("127.0.0.1:50051"))
        threads = await bridge.unary("ThreadService/ListThreads", {}, metadata)
    """

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel
        self._unary = {
            name: channel.unary_unary(
                method.path,
                request_serializer=method.request.SerializeToString,
                response_deserializer=method.response.FromString,
            )
            for name, method in METHODS.items()
        }
        self._stream = channel.unary_stream(
            "/cairn.v1.RunService/Stream",
            request_serializer=run_service_pb2.StreamRequest.SerializeToString,
            response_deserializer=run_service_pb2.StreamResponse.FromString,
        )
        self._join = channel.unary_stream(
            "/cairn.v1.RunService/JoinRun",
            request_serializer=run_service_pb2.JoinRunRequest.SerializeToString,
            response_deserializer=run_service_pb2.JoinRunResponse.FromString,
        )

    async def close(self) -> None:
        await self._channel.close()

    async def unary(
        self, name: str, body: Any, metadata: tuple[tuple[str, str], ...]
    ) -> dict[str, Any]:
        method = METHODS.get(name)
        if method is None:
            raise CallFailed("NOT_FOUND", f"Studio does not call {name}", "", {}, 404)
        request = parse(body, method.request)
        try:
            response = await self._unary[name](request, metadata=metadata, timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as error:
            raise CallFailed.from_rpc(error) from None
        return to_json(response)

    async def start_run(self, body: Any, metadata: tuple[tuple[str, str], ...]) -> dict[str, Any]:
        """Start a run with RunService.Stream and answer its first event's
        run (RUNNING) as soon as it exists. Leaving the stream then does not
        stop the run: the page follows it with `events`."""
        request = parse(body, run_service_pb2.StreamRequest)
        call = self._stream(request, metadata=metadata, timeout=CALL_TIMEOUT)
        try:
            first = await call.read()
        except grpc.aio.AioRpcError as error:
            raise CallFailed.from_rpc(error) from None
        finally:
            call.cancel()
        if first is grpc.aio.EOF or not first.event.HasField("run"):
            raise CallFailed("UNAVAILABLE", "the run's stream ended before it began", "", {}, 503)
        return {"run": to_json(first.event.run)}

    async def events(
        self, run_id: str, after: int, metadata: tuple[tuple[str, str], ...]
    ) -> AsyncIterator[dict[str, Any]]:
        """The run's events after event `after` (JoinRun), live until the run
        ends or stops at an interrupt; raises CallFailed."""
        request = run_service_pb2.JoinRunRequest(run_id=run_id, after_event_id=after)
        call = self._join(request, metadata=metadata)
        try:
            async for response in call:
                yield to_json(response.event)
        except grpc.aio.AioRpcError as error:
            raise CallFailed.from_rpc(error) from None
        finally:
            call.cancel()
