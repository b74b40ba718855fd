"""The interceptor on a real grpc.aio server: who may call what, in which namespace."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from cairn._errors import error_info
from cairn.v1 import (
    checkpoint_service_pb2,
    graph_service_pb2,
    run_service_pb2,
    run_service_pb2_grpc,
    schedule_service_pb2,
    store_service_pb2,
    thread_service_pb2,
    thread_service_pb2_grpc,
    worker_service_pb2,
    worker_service_pb2_grpc,
)
from cairn_server.auth import (
    DESTRUCTIVE,
    METHOD_ROLES,
    AccessFile,
    Authenticator,
    JwtVerifier,
    RateLimiter,
)
from tests.auth.conftest import SECRET, Keys, Served, hs_token, serve

WAIT = 10


@pytest.fixture
async def served(access_file: str) -> AsyncIterator[Served]:
    authenticator = Authenticator(
        jwt=JwtVerifier(secret=SECRET), access=AccessFile.load(access_file)
    )
    instance = await serve(authenticator)
    try:
        yield instance
    finally:
        await instance.server.stop(None)


@pytest.fixture
async def channel(served: Served) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(served.address) as opened:
        yield opened


def as_(credential: str | None, namespace: str | None = "team-a") -> tuple[tuple[str, str], ...]:
    metadata = []
    if credential is not None:
        metadata.append(("authorization", f"Bearer {credential}"))
    if namespace is not None:
        metadata.append(("cairn-namespace", namespace))
    return tuple(metadata)


async def refused(call: Any, code: grpc.StatusCode, reason: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(call, WAIT)
    error = caught.value
    assert error.code() == code, f"{error.code()}: {error.details()}"
    info = error_info(error)
    assert info is not None and (info.domain, info.reason) == ("cairn.dev", reason)
    return error


async def who(channel: grpc.aio.Channel, metadata: Any) -> dict[str, Any]:
    """Who the servicer saw calling GetThread (its current())."""
    threads = thread_service_pb2_grpc.ThreadServiceStub(channel)
    response = await threads.GetThread(
        thread_service_pb2.GetThreadRequest(thread_id="t-1"), metadata=metadata, timeout=WAIT
    )
    return json_format.MessageToDict(response.thread.metadata)


# --- the table -----------------------------------------------------------------------------


def test_every_method_of_every_cairn_service_has_a_role() -> None:
    files = (
        thread_service_pb2,
        run_service_pb2,
        worker_service_pb2,
        checkpoint_service_pb2,
        graph_service_pb2,
        store_service_pb2,
        schedule_service_pb2,
    )
    methods = {
        f"{service.full_name}/{method.name}"
        for file in files
        for service in file.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert len(methods) == 40
    assert methods - set(METHOD_ROLES) == set()
    assert set(METHOD_ROLES) >= DESTRUCTIVE


# --- health and authentication -------------------------------------------------------------


async def test_health_answers_without_credentials(channel: grpc.aio.Channel) -> None:
    response = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=WAIT
    )
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_call_without_credentials_is_unauthenticated(
    channel: grpc.aio.Channel, log_records: pytest.LogCaptureFixture
) -> None:
    threads = thread_service_pb2_grpc.ThreadServiceStub(channel)
    error = await refused(
        threads.GetThread(thread_service_pb2.GetThreadRequest(thread_id="t-1")),
        grpc.StatusCode.UNAUTHENTICATED,
        "UNAUTHENTICATED",
    )
    assert "authorization: Bearer" in (error.details() or "")
    denied = [r.getMessage() for r in log_records.records if r.name == "cairn.audit"]
    assert len(denied) == 1
    assert denied[0].startswith("denied caller=unauthenticated")
    assert "thread_id=t-1" in denied[0]


async def test_bad_credentials_are_unauthenticated_and_never_echoed(
    channel: grpc.aio.Channel, keys: Keys, log_records: pytest.LogCaptureFixture
) -> None:
    threads = thread_service_pb2_grpc.ThreadServiceStub(channel)
    request = thread_service_pb2.GetThreadRequest(thread_id="t-1")
    unknown_key = keys.reader[:-4] + "AAAA"
    expired = hs_token(lifetime=-60, permissions=["team-a:reader"])
    for credential, says in (
        (unknown_key, "unknown API key"),
        (expired, "expired"),
        (hs_token(secret=b"x" * 32), "bad signature"),
        ("opaque-token", "neither a JWT nor a Cairn API key"),
    ):
        error = await refused(
            threads.GetThread(request, metadata=as_(credential)),
            grpc.StatusCode.UNAUTHENTICATED,
            "UNAUTHENTICATED",
        )
        assert says in (error.details() or "")
        assert credential not in (error.details() or "")
    assert all(unknown_key not in r.getMessage() for r in log_records.records)
    assert all(expired not in r.getMessage() for r in log_records.records)


async def test_jwt_and_api_key_callers_reach_the_servicer_with_their_namespace(
    channel: grpc.aio.Channel, keys: Keys
) -> None:
    assert await who(channel, as_(keys.reader)) == {"caller": "key:reader", "namespace": "team-a"}
    token = hs_token("alice", permissions=["default:reader"])
    assert await who(channel, as_(token, None)) == {"caller": "jwt:alice", "namespace": "default"}


async def test_an_invalid_namespace_is_invalid_argument(
    channel: grpc.aio.Channel, keys: Keys
) -> None:
    threads = thread_service_pb2_grpc.ThreadServiceStub(channel)
    error = await refused(
        threads.GetThread(
            thread_service_pb2.GetThreadRequest(thread_id="t"), metadata=as_(keys.admin, "Team A")
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_NAMESPACE",
    )
    assert "not a namespace name" in (error.details() or "")


# --- roles and namespaces ------------------------------------------------------------------


async def test_a_reader_cannot_delete_a_thread(
    channel: grpc.aio.Channel, keys: Keys, log_records: pytest.LogCaptureFixture
) -> None:
    threads = thread_service_pb2_grpc.ThreadServiceStub(channel)
    error = await refused(
        threads.DeleteThread(
            thread_service_pb2.DeleteThreadRequest(thread_id="t-9"), metadata=as_(keys.reader)
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED",
    )
    assert "needs the writer role" in (error.details() or "")
    lines = [r.getMessage() for r in log_records.records if r.name == "cairn.audit"]
    assert len(lines) == 1
    assert lines[0].startswith(
        "denied caller=key:reader namespace=team-a method=cairn.v1.ThreadService/DeleteThread"
        " code=PERMISSION_DENIED reason=PERMISSION_DENIED peer=ipv4:127.0.0.1:"
    )
    assert lines[0].endswith("thread_id=t-9")
    assert keys.reader not in lines[0]


async def test_a_writer_deletes_and_the_audit_log_says_who(
    channel: grpc.aio.Channel, keys: Keys, log_records: pytest.LogCaptureFixture
) -> None:
    threads = thread_service_pb2_grpc.ThreadServiceStub(channel)
    await threads.DeleteThread(
        thread_service_pb2.DeleteThreadRequest(thread_id="t 9\nforged"),
        metadata=as_(keys.writer),
        timeout=WAIT,
    )
    records = [r for r in log_records.records if r.name == "cairn.audit"]
    assert [r.getMessage() for r in records] == [
        "destructive caller=key:writer namespace=team-a"
        ' method=cairn.v1.ThreadService/DeleteThread thread_id="t 9\\nforged"'
    ]
    assert records[0].audit["thread_id"] == "t 9\nforged"  # type: ignore[attr-defined]
    # Reads are not audit-logged.
    await who(channel, as_(keys.writer))
    assert len([r for r in log_records.records if r.name == "cairn.audit"]) == 1


async def test_a_caller_of_another_namespace_gets_not_found(
    channel: grpc.aio.Channel, keys: Keys
) -> None:
    threads = thread_service_pb2_grpc.ThreadServiceStub(channel)
    for call in (
        threads.GetThread(
            thread_service_pb2.GetThreadRequest(thread_id="t-1"), metadata=as_(keys.nobody)
        ),
        threads.DeleteThread(
            thread_service_pb2.DeleteThreadRequest(thread_id="t-1"), metadata=as_(keys.nobody)
        ),
        threads.GetThread(
            thread_service_pb2.GetThreadRequest(thread_id="t-1"),
            metadata=as_(keys.reader, "team-b"),
        ),
    ):
        await refused(call, grpc.StatusCode.NOT_FOUND, "NAMESPACE_NOT_FOUND")
    assert await who(channel, as_(keys.nobody, "team-b")) == {
        "caller": "key:nobody",
        "namespace": "team-b",
    }
    assert (await who(channel, as_(keys.admin, "team-z")))["caller"] == "key:admin"


async def test_streams_are_guarded_too(channel: grpc.aio.Channel, keys: Keys) -> None:
    runs = run_service_pb2_grpc.RunServiceStub(channel)
    join = run_service_pb2.JoinRunRequest(run_id="r-1")
    events = [e async for e in runs.JoinRun(join, metadata=as_(keys.reader), timeout=WAIT)]
    assert len(events) == 2
    await refused(
        _drain(runs.JoinRun(join, metadata=as_(None))),
        grpc.StatusCode.UNAUTHENTICATED,
        "UNAUTHENTICATED",
    )
    workers = worker_service_pb2_grpc.WorkerServiceStub(channel)

    async def hello() -> AsyncIterator[worker_service_pb2.ConnectRequest]:
        yield worker_service_pb2.ConnectRequest(hello=worker_service_pb2.WorkerHello())

    welcome = [m async for m in workers.Connect(hello(), metadata=as_(keys.worker), timeout=WAIT)]
    assert welcome[0].welcome.worker_id == "key:worker"  # the servicer saw the worker
    await refused(
        _drain(workers.Connect(hello(), metadata=as_(keys.reader))),
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED",
    )


async def _drain(call: Any) -> list[Any]:
    return [message async for message in call]


async def test_reflection_needs_some_grant(channel: grpc.aio.Channel, keys: Keys) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        return requests()

    await refused(
        _drain(stub.ServerReflectionInfo(ask())),
        grpc.StatusCode.UNAUTHENTICATED,
        "UNAUTHENTICATED",
    )
    # A grant in any namespace lets a caller see the API (not any namespace's data).
    answers = await asyncio.wait_for(
        _drain(stub.ServerReflectionInfo(ask(), metadata=as_(keys.nobody, None))), WAIT
    )
    names = {s.name for s in answers[0].list_services_response.service}
    assert "cairn.v1.ThreadService" in names


# --- open mode, unknown methods, rate limit ------------------------------------------------


async def test_without_identity_sources_every_caller_is_the_anonymous_admin() -> None:
    instance = await serve(Authenticator())
    try:
        async with grpc.aio.insecure_channel(instance.address) as opened:
            assert await who(opened, ()) == {"caller": "anonymous", "namespace": "default"}
            assert await who(opened, as_("whatever", "team-a")) == {
                "caller": "anonymous",
                "namespace": "team-a",
            }
    finally:
        await instance.server.stop(None)


async def test_a_method_missing_from_the_table_is_refused_even_to_admins(keys: Keys) -> None:
    async def echo(request: bytes, context: Any) -> bytes:
        return request

    def add_unlisted(server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(echo)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("cairn.v1.NewService", {"Do": handler}),)
        )

    instance = await serve(Authenticator(), extra=add_unlisted)
    try:
        async with grpc.aio.insecure_channel(instance.address) as opened:
            call = opened.unary_unary("/cairn.v1.NewService/Do")(b"hi")
            error = await refused(call, grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
            assert "no role in the server's table" in (error.details() or "")
    finally:
        await instance.server.stop(None)


async def test_a_caller_over_its_rate_waits_and_is_told_how_long(
    access_file: str, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    limiter = RateLimiter(rate=1, burst=2, clock=lambda: now[0])
    instance = await serve(Authenticator(access=AccessFile.load(access_file)), rate_limiter=limiter)
    try:
        async with grpc.aio.insecure_channel(instance.address) as opened:
            await who(opened, as_(keys.reader))
            await who(opened, as_(keys.reader))
            with caplog.at_level(logging.INFO, logger="cairn.audit"):
                error = await refused(
                    who(opened, as_(keys.reader)),
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    "RATE_LIMITED",
                )
            info = error_info(error)
            assert info is not None and info.metadata["retry_after_ms"] == "1000"
            assert await who(opened, as_(keys.writer))  # another caller has its own bucket
            now[0] = 1.0
            assert await who(opened, as_(keys.reader))
            # Health is never limited.
            for _ in range(5):
                await health_pb2_grpc.HealthStub(opened).Check(health_pb2.HealthCheckRequest())
    finally:
        await instance.server.stop(None)
