"""Requests the server cannot decode (issue 15, item 6): bytes that are not
protobuf, a string field that is not UTF-8, and messages nested past
protobuf's limit of 100 levels. Every method of every service, health and
reflection included, answers each with INVALID_ARGUMENT and an ErrorInfo
(MALFORMED_REQUEST), without Python or C-core internals in the message; on
a stream, so does a bad message after good ones. The server keeps serving.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from cairn import entrypoint, interrupt
from cairn._values import to_json, to_value
from cairn.v1 import (
    checkpoint_service_pb2,
    run_service_pb2,
    run_service_pb2_grpc,
    schedule_service_pb2,
    thread_service_pb2,
    worker_service_pb2,
)
from tests.api.test_bad_input import check_error

WAIT = 10.0
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
INTERNALS = ("class", "Traceback", "DecodeError", "upb", "google.protobuf", "Exception", "File ")

SERVICE_MODULES = (
    thread_service_pb2,
    run_service_pb2,
    worker_service_pb2,
    checkpoint_service_pb2,
    schedule_service_pb2,
    health_pb2,
    reflection_pb2,
)
METHODS = [
    method
    for module in SERVICE_MODULES
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]


def path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


# --- undecodable bytes ----------------------------------------------------------------------


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def not_protobuf(method: MethodDescriptor) -> bytes:
    return b"\xff\xff\xff\xff\xff\xff"


def bad_utf8(method: MethodDescriptor) -> bytes | None:
    """The request's first string field holding bytes that are not UTF-8."""
    for field in method.input_type.fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            return _field(field.number, b"ok\xff\xfe")
    return None


def nested_groups(method: MethodDescriptor) -> bytes:
    """An unknown field nesting groups 150 deep: every message type can carry
    it, and protobuf refuses it past 100 levels."""
    return _varint(99 << 3 | 3) * 150 + _varint(99 << 3 | 4) * 150


def deep_value(depth: int = 150) -> bytes:
    """A google.protobuf.Value of lists nested `depth` deep."""
    value = _varint(1 << 3 | 0) + b"\x00"  # null_value
    for _ in range(depth):
        value = _field(6, _field(1, value))  # Value.list_value.values[0]
    return value


BAD_BYTES = {"not-protobuf": not_protobuf, "bad-utf8": bad_utf8, "nested-groups": nested_groups}


def cases() -> Iterator[Any]:
    for method in METHODS:
        for name, make in BAD_BYTES.items():
            data = make(method)
            if data is not None:
                yield pytest.param(method, data, id=f"{method.name}-{name}")


# --- fixtures -------------------------------------------------------------------------------


@entrypoint()
def ask(question: str) -> dict:
    return {"question": question, "answer": interrupt(question)}


@pytest.fixture
async def channel(address: str) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(address) as instance:
        yield instance


def check_malformed(error: grpc.aio.AioRpcError, method: MethodDescriptor) -> None:
    info = check_error(error, INVALID_ARGUMENT, "MALFORMED_REQUEST")
    assert info.metadata["method"] == path(method).lstrip("/")
    details = error.details() or ""
    assert "cannot be decoded" in details
    for internal in INTERNALS:
        assert internal not in details, details


async def send_raw(channel: grpc.aio.Channel, method: MethodDescriptor, data: bytes) -> Any:
    """`data` as the request (the first message of a request stream); the
    responses until the call ends."""
    if method.client_streaming:
        call: Any = channel.stream_stream(path(method))(iter([data]), timeout=WAIT)
        return [message async for message in call]
    if method.server_streaming:
        call = channel.unary_stream(path(method))(data, timeout=WAIT)
        return [message async for message in call]
    return await channel.unary_unary(path(method))(data, timeout=WAIT)


async def still_serving(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=WAIT)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


# --- tests ----------------------------------------------------------------------------------


def test_every_method_of_every_service_is_covered() -> None:
    names = {path(m) for m in METHODS}
    assert "/cairn.v1.WorkerService/Connect" in names
    assert "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo" in names
    assert "/grpc.health.v1.Health/Watch" in names
    assert len(names) >= 30


@pytest.mark.parametrize(("method", "data"), list(cases()))
async def test_undecodable_request_is_invalid_argument(
    channel: grpc.aio.Channel, method: MethodDescriptor, data: bytes
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await send_raw(channel, method, data)
    check_malformed(caught.value, method)
    await still_serving(channel)


@pytest.mark.parametrize(
    ("rpc", "field"),
    [
        ("/cairn.v1.RunService/Invoke", 3),  # InvokeRequest.input
        ("/cairn.v1.ThreadService/UpdateState", 3),  # UpdateStateRequest.values
    ],
)
async def test_a_value_nested_past_protobufs_limit_is_invalid_argument(
    channel: grpc.aio.Channel, rpc: str, field: int
) -> None:
    service, name = rpc.strip("/").split("/")
    module = run_service_pb2 if "Run" in service else thread_service_pb2
    method = module.DESCRIPTOR.services_by_name[service.split(".")[-1]].methods_by_name[name]
    assert method.input_type.fields_by_number[field].message_type.full_name == (
        "google.protobuf.Value"
    )
    request = _field(1, b"deep-thread") + _field(field, deep_value())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await channel.unary_unary(rpc)(request, timeout=WAIT)
    check_malformed(caught.value, method)


def _method(module: Any, service: str, name: str) -> MethodDescriptor:
    return module.DESCRIPTOR.services_by_name[service].methods_by_name[name]  # type: ignore[no-any-return]


async def test_an_undecodable_message_after_the_hello_ends_the_worker_stream(
    channel: grpc.aio.Channel,
) -> None:
    connect = _method(worker_service_pb2, "WorkerService", "Connect")
    hello = worker_service_pb2.ConnectRequest(
        hello=worker_service_pb2.WorkerHello(
            worker_id="raw-worker",
            registrations=[
                worker_service_pb2.Registration(
                    name="raw_echo", kind=worker_service_pb2.TASK_KIND_ENTRYPOINT
                )
            ],
        )
    )
    outgoing: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def requests() -> AsyncIterator[bytes]:
        while (item := await outgoing.get()) is not None:
            yield item

    call: Any = channel.stream_stream(path(connect))(requests(), timeout=WAIT)
    responses = aiter(call)
    await outgoing.put(hello.SerializeToString())
    welcome = worker_service_pb2.ConnectResponse.FromString(await anext(responses))
    assert welcome.WhichOneof("kind") == "welcome"
    # The stream is live: a report about a task it does not hold is rejected on it.
    report = worker_service_pb2.ConnectRequest(
        completed=worker_service_pb2.TaskCompleted(task_id="made-up", result=to_value(1))
    )
    await outgoing.put(report.SerializeToString())
    rejection = worker_service_pb2.ConnectResponse.FromString(await anext(responses))
    assert rejection.rejected.error.reason == "TASK_NOT_HELD"
    # A completed report whose result nests past protobuf's limit.
    deep_report = _field(2, _field(1, b"made-up") + _field(2, deep_value()))
    await outgoing.put(deep_report)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await anext(responses)
    check_malformed(caught.value, connect)
    await outgoing.put(None)
    await still_serving(channel)


async def test_an_undecodable_resume_on_a_session_ends_it_and_leaves_the_run_interrupted(
    channel: grpc.aio.Channel, start_worker: Any
) -> None:
    await start_worker([ask])
    session = _method(run_service_pb2, "RunService", "Session")
    start = run_service_pb2.SessionRequest(
        start=run_service_pb2.StreamRequest(
            thread_id="session-thread",
            target="ask",
            input=to_value("continue?"),
            create_thread=True,
        )
    )
    outgoing: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def requests() -> AsyncIterator[bytes]:
        while (item := await outgoing.get()) is not None:
            yield item

    call: Any = channel.stream_stream(path(session))(requests(), timeout=WAIT)
    await outgoing.put(start.SerializeToString())
    interrupted = False
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for data in call:
            event = run_service_pb2.SessionResponse.FromString(data).event
            if event.HasField("run") and event.run.interrupts:
                interrupted = True
                await outgoing.put(b"\xff\xff\xff\xff")
    assert interrupted, caught.value
    check_malformed(caught.value, session)
    await outgoing.put(None)
    # The run waits for a resume as before; a good resume finishes it.
    runs = run_service_pb2_grpc.RunServiceStub(channel)
    resumed = await runs.Invoke(
        run_service_pb2.InvokeRequest(
            thread_id="session-thread", target="ask", command={"resume": to_value("yes")}
        ),
        timeout=WAIT,
    )
    assert to_json(resumed.run.output) == {"question": "continue?", "answer": "yes"}


async def test_an_undecodable_reflection_request_after_a_good_one_ends_the_stream(
    channel: grpc.aio.Channel,
) -> None:
    info = _method(reflection_pb2, "ServerReflection", "ServerReflectionInfo")
    good = reflection_pb2.ServerReflectionRequest(list_services="")
    call: Any = channel.stream_stream(path(info))(
        iter([good.SerializeToString(), b"\xff\xff\xff"]), timeout=WAIT
    )
    answers = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for data in call:
            answers.append(reflection_pb2.ServerReflectionResponse.FromString(data))
    assert answers and answers[0].HasField("list_services_response")
    check_malformed(caught.value, info)
