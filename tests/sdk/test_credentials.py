"""Every client surface (Client, SyncClient, Worker, CairnSaver and the `cairn`
inspection commands) sends the caller's credential and namespace on every
call, reaches TLS and mTLS servers, and reports refusals as typed errors.

The server here records what each call carried: a real gRPC server (threads,
so that blocking and asyncio clients can both talk to it) with Cairn's
services, answering the few calls these tests make."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import pathlib
import re
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
import trustme
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from cairn import (
    Client,
    PermissionDeniedError,
    SyncClient,
    TlsConfig,
    UnauthenticatedError,
    UnavailableError,
    Worker,
    task,
)
from cairn._credentials import ConnectionSettings, is_loopback
from cairn.langgraph import CairnSaver
from cairn.v1 import (
    checkpoint_service_pb2,
    checkpoint_service_pb2_grpc,
    run_pb2,
    run_service_pb2,
    run_service_pb2_grpc,
    thread_pb2,
    thread_service_pb2,
    thread_service_pb2_grpc,
    worker_service_pb2,
    worker_service_pb2_grpc,
)
from cairn_server import inspection

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
API_KEY = "cairn_" + "k" * 43
ENV = (
    "CAIRN_TOKEN",
    "CAIRN_API_KEY",
    "CAIRN_NAMESPACE",
    "CAIRN_TLS",
    "CAIRN_TLS_CA",
    "CAIRN_TLS_CERT",
    "CAIRN_TLS_KEY",
    "CAIRN_TLS_SERVER_NAME",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CAIRN_* variable of the machine running the tests leaks in."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


# --- the recording server --------------------------------------------------------------


@dataclasses.dataclass
class Seen:
    """One call as the server saw it."""

    method: str
    metadata: dict[str, str]
    client_cn: str | None = None

    @property
    def bearer(self) -> str | None:
        return self.metadata.get("authorization")

    @property
    def namespace(self) -> str | None:
        return self.metadata.get("cairn-namespace")


class Recorder:
    """Records each call; refuses a call whose credential is `expired`
    (UNAUTHENTICATED) or `reader` (PERMISSION_DENIED) as Cairn does."""

    def __init__(self) -> None:
        self.calls: list[Seen] = []
        self._lock = threading.Lock()

    def enter(self, method: str, context: grpc.ServicerContext) -> None:
        peer = context.auth_context().get("x509_common_name")
        seen = Seen(
            method,
            {key: value for key, value in context.invocation_metadata()},
            peer[0].decode() if peer else None,
        )
        with self._lock:
            self.calls.append(seen)
        refusals = {
            "Bearer expired": (code_pb2.UNAUTHENTICATED, "UNAUTHENTICATED", "the JWT expired"),
            "Bearer reader": (code_pb2.PERMISSION_DENIED, "PERMISSION_DENIED", "needs writer"),
        }
        if seen.bearer in refusals:
            code, reason, message = refusals[seen.bearer]
            info = error_details_pb2.ErrorInfo(reason=reason, domain="cairn.dev")
            status = status_pb2.Status(code=code, message=message)
            status.details.add().Pack(info)
            context.abort_with_status(rpc_status.to_status(status))

    def of(self, method: str) -> list[Seen]:
        with self._lock:
            return [call for call in self.calls if call.method == method]


def _run(state: int = run_pb2.RUN_STATE_SUCCEEDED) -> run_pb2.Run:
    return run_pb2.Run(run_id="r1", thread_id="t1", state=state)  # type: ignore[arg-type]


def _event() -> run_pb2.RunEvent:
    return run_pb2.RunEvent(event_id=1, run_id="r1", run=_run())


class Runs(run_service_pb2_grpc.RunServiceServicer):
    def __init__(self, recorder: Recorder) -> None:
        self.r = recorder

    def GetRun(self, request: Any, context: Any) -> Any:
        self.r.enter("GetRun", context)
        return run_service_pb2.GetRunResponse(run=_run())

    def ListRuns(self, request: Any, context: Any) -> Any:
        self.r.enter("ListRuns", context)
        return run_service_pb2.ListRunsResponse(runs=[_run()])

    def CancelRun(self, request: Any, context: Any) -> Any:
        self.r.enter("CancelRun", context)
        return run_service_pb2.CancelRunResponse(run=_run(run_pb2.RUN_STATE_CANCELLED))

    def Stream(self, request: Any, context: Any) -> Iterator[Any]:
        self.r.enter("Stream", context)
        yield run_service_pb2.StreamResponse(event=_event())

    def JoinRun(self, request: Any, context: Any) -> Iterator[Any]:
        self.r.enter("JoinRun", context)
        yield run_service_pb2.JoinRunResponse(event=_event())

    def Session(self, requests: Iterator[Any], context: Any) -> Iterator[Any]:
        self.r.enter("Session", context)
        next(requests)  # the start
        yield run_service_pb2.SessionResponse(event=_event())


class Threads(thread_service_pb2_grpc.ThreadServiceServicer):
    def __init__(self, recorder: Recorder) -> None:
        self.r = recorder

    def ListThreads(self, request: Any, context: Any) -> Any:
        self.r.enter("ListThreads", context)
        thread = thread_pb2.Thread(thread_id="t1", status=thread_pb2.THREAD_STATUS_IDLE)
        return thread_service_pb2.ListThreadsResponse(threads=[thread])

    def GetState(self, request: Any, context: Any) -> Any:
        self.r.enter("GetState", context)
        return thread_service_pb2.GetStateResponse(state=thread_pb2.StateSnapshot())

    def GetStateHistory(self, request: Any, context: Any) -> Any:
        self.r.enter("GetStateHistory", context)
        return thread_service_pb2.GetStateHistoryResponse()


class Workers(worker_service_pb2_grpc.WorkerServiceServicer):
    def __init__(self, recorder: Recorder) -> None:
        self.r = recorder

    def ListWorkers(self, request: Any, context: Any) -> Any:
        self.r.enter("ListWorkers", context)
        return worker_service_pb2.ListWorkersResponse()

    def Connect(self, requests: Iterator[Any], context: Any) -> Iterator[Any]:
        self.r.enter("Connect", context)
        next(requests)  # the hello
        yield worker_service_pb2.ConnectResponse(welcome=worker_service_pb2.Welcome(worker_id="w1"))
        for _ in requests:  # until the worker closes its side
            pass


class Checkpoints(checkpoint_service_pb2_grpc.CheckpointServiceServicer):
    def __init__(self, recorder: Recorder) -> None:
        self.r = recorder

    def GetTuple(self, request: Any, context: Any) -> Any:
        self.r.enter("GetTuple", context)
        return checkpoint_service_pb2.GetTupleResponse()

    def ListCheckpoints(self, request: Any, context: Any) -> Any:
        self.r.enter("ListCheckpoints", context)
        return checkpoint_service_pb2.ListCheckpointsResponse()


@dataclasses.dataclass
class Server:
    address: str
    recorder: Recorder


@contextlib.contextmanager
def recording_server(credentials: grpc.ServerCredentials | None = None) -> Iterator[Server]:
    recorder = Recorder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    run_service_pb2_grpc.add_RunServiceServicer_to_server(Runs(recorder), server)
    thread_service_pb2_grpc.add_ThreadServiceServicer_to_server(Threads(recorder), server)
    worker_service_pb2_grpc.add_WorkerServiceServicer_to_server(Workers(recorder), server)
    checkpoint_service_pb2_grpc.add_CheckpointServiceServicer_to_server(
        Checkpoints(recorder), server
    )
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield Server(f"127.0.0.1:{port}", recorder)
    finally:
        server.stop(grace=None).wait(5)


@pytest.fixture
def server() -> Iterator[Server]:
    with recording_server() as instance:
        yield instance


@dataclasses.dataclass
class Pki:
    """A CA (trustme) and the PEM files a TLS server and client need."""

    ca: trustme.CA
    ca_file: pathlib.Path
    client_cert: pathlib.Path
    client_key: pathlib.Path
    server_key: bytes
    server_chain: bytes
    named_key: bytes  # a certificate only for the name "cairn.test"
    named_chain: bytes

    def server_credentials(
        self, *, mutual: bool = False, named: bool = False
    ) -> grpc.ServerCredentials:
        pair = (self.named_key, self.named_chain) if named else (self.server_key, self.server_chain)
        return grpc.ssl_server_credentials(
            [pair],
            root_certificates=self.ca.cert_pem.bytes() if mutual else None,
            require_client_auth=mutual,
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    client = ca.issue_cert("worker-1.cairn.test", common_name="worker-1")
    client.cert_chain_pems[0].write_to_path(str(folder / "client.pem"))
    client.private_key_pem.write_to_path(str(folder / "client-key.pem"))
    server = ca.issue_cert("127.0.0.1", "localhost")
    named = ca.issue_cert("cairn.test")
    return Pki(
        ca=ca,
        ca_file=folder / "ca.pem",
        client_cert=folder / "client.pem",
        client_key=folder / "client-key.pem",
        server_key=server.private_key_pem.bytes(),
        server_chain=b"".join(pem.bytes() for pem in server.cert_chain_pems),
        named_key=named.private_key_pem.bytes(),
        named_chain=b"".join(pem.bytes() for pem in named.cert_chain_pems),
    )


def assert_carried(calls: list[Seen], bearer: str | None, namespace: str | None) -> None:
    assert calls, "the server saw no such call"
    for call in calls:
        assert (call.bearer, call.namespace) == (bearer, namespace), call.method


# --- every surface sends the credential and the namespace --------------------------------


async def test_client_sends_credential_and_namespace_on_unary_and_streaming_calls(
    server: Server,
) -> None:
    async with Client(server.address, token=TOKEN, namespace="team-a") as client:
        assert (await client.get_run("r1")).run_id == "r1"
        events = [event async for event in client.stream("workflow", 1, thread_id="t1")]
        assert events[-1].run is not None
        session = client.session("workflow", 1, thread_id="t1")
        assert [event.event_id async for event in session] == [1]
        await session.close()
    for method in ("GetRun", "Stream", "Session"):
        assert_carried(server.recorder.of(method), f"Bearer {TOKEN}", "team-a")


def test_sync_client_sends_api_key_and_namespace(server: Server) -> None:
    with SyncClient(server.address, api_key=API_KEY, namespace="team-a") as client:
        assert [t.thread_id for t in client.list_threads()] == ["t1"]
        assert [e.event_id for e in client.join("r1")] == [1]
        assert client.list_workers() == []
    for method in ("ListThreads", "JoinRun", "ListWorkers"):
        assert_carried(server.recorder.of(method), f"Bearer {API_KEY}", "team-a")


@task
def echo(value: int) -> int:
    return value


async def test_worker_connect_stream_carries_credential_and_namespace(server: Server) -> None:
    worker = Worker(server.address, functions=[echo], api_key=API_KEY, namespace="team-b")
    running = asyncio.ensure_future(worker.run())
    try:
        await asyncio.wait_for(worker.connected.wait(), 10)
    finally:
        await worker.stop(grace=1)
        await asyncio.wait_for(running, 10)
    assert_carried(server.recorder.of("Connect"), f"Bearer {API_KEY}", "team-b")


async def test_saver_sends_credential_and_namespace_sync_and_async(server: Server) -> None:
    config: Any = {"configurable": {"thread_id": "t1"}}
    saver = CairnSaver(server.address, token=TOKEN, namespace="team-c")
    try:
        assert await asyncio.to_thread(saver.get_tuple, config) is None
        assert await saver.aget_tuple(config) is None
        assert [item async for item in saver.alist(config)] == []
    finally:
        await saver.aclose()
    assert len(server.recorder.of("GetTuple")) == 2
    for method in ("GetTuple", "ListCheckpoints"):
        assert_carried(server.recorder.of(method), f"Bearer {TOKEN}", "team-c")


async def test_nothing_is_sent_when_nothing_is_given(server: Server) -> None:
    async with Client(server.address) as client:
        await client.get_run("r1")
    (call,) = server.recorder.of("GetRun")
    assert "authorization" not in call.metadata
    assert "cairn-namespace" not in call.metadata


async def test_a_namespace_given_explicitly_is_sent_even_when_it_is_default(
    server: Server,
) -> None:
    async with Client(server.address, namespace="default") as client:
        await client.get_run("r1")
    assert_carried(server.recorder.of("GetRun"), None, "default")


async def test_per_call_metadata_is_kept_next_to_the_connection_metadata(server: Server) -> None:
    settings = ConnectionSettings.resolve(api_key=API_KEY, namespace="team-a")
    async with settings.aio_channel(server.address) as channel:
        stub = run_service_pb2_grpc.RunServiceStub(channel)
        await stub.GetRun(run_service_pb2.GetRunRequest(), metadata=(("x-trace", "7"),))
    (call,) = server.recorder.of("GetRun")
    assert call.metadata["x-trace"] == "7"
    assert call.bearer == f"Bearer {API_KEY}"


# --- the environment ----------------------------------------------------------------------


async def test_environment_is_used_when_arguments_are_absent(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRN_TOKEN", TOKEN)
    monkeypatch.setenv("CAIRN_NAMESPACE", "from-env")
    async with Client(server.address) as client:
        await client.get_run("r1")
    worker = Worker(server.address, functions=[echo])
    running = asyncio.ensure_future(worker.run())
    try:
        await asyncio.wait_for(worker.connected.wait(), 10)
    finally:
        await worker.stop(grace=1)
        await asyncio.wait_for(running, 10)
    for method in ("GetRun", "Connect"):
        assert_carried(server.recorder.of(method), f"Bearer {TOKEN}", "from-env")


async def test_arguments_override_the_environment(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRN_TOKEN", TOKEN)
    monkeypatch.setenv("CAIRN_NAMESPACE", "from-env")
    async with Client(server.address, api_key=API_KEY, namespace="from-arg") as client:
        await client.get_run("r1")
    assert_carried(server.recorder.of("GetRun"), f"Bearer {API_KEY}", "from-arg")


@pytest.mark.parametrize(
    ("arguments", "environment", "message"),
    [
        ({"token": TOKEN, "api_key": API_KEY}, {}, "not both token and api_key"),
        ({}, {"CAIRN_TOKEN": TOKEN, "CAIRN_API_KEY": API_KEY}, "CAIRN_TOKEN and CAIRN_API_KEY"),
        ({"token": "two words"}, {}, "token holds characters"),
        ({"namespace": "Team A"}, {}, "namespace: 'Team A' is not a namespace name"),
        ({}, {"CAIRN_NAMESPACE": "*"}, "CAIRN_NAMESPACE: '*' is not a namespace name"),
        ({}, {"CAIRN_TLS": "maybe"}, "CAIRN_TLS must be 1/true or 0/false"),
        ({"tls": TlsConfig(ca_file="/nowhere/ca.pem")}, {}, "'/nowhere/ca.pem' from tls.ca_file"),
        ({}, {"CAIRN_TLS_CA": "/nowhere/ca.pem"}, "'/nowhere/ca.pem' from CAIRN_TLS_CA"),
        ({}, {"CAIRN_TLS_CERT": "/nowhere/c.pem"}, "CAIRN_TLS_CERT is set but not key_file"),
        ({}, {"CAIRN_TLS": "0", "CAIRN_TLS_CA": "/x.pem"}, "CAIRN_TLS=0 contradicts CAIRN_TLS_CA"),
    ],
)
def test_bad_settings_fail_at_construction_with_a_clear_error(
    arguments: dict[str, Any],
    environment: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=re.escape(message)):
        SyncClient("127.0.0.1:1", **arguments)
    with pytest.raises(ValueError, match=re.escape(message)):
        Worker("127.0.0.1:1", **arguments)
    with pytest.raises(ValueError, match=re.escape(message)):
        CairnSaver("127.0.0.1:1", **arguments)


async def test_tls_false_ignores_the_environments_tls_settings(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRN_TLS_CA", "/nowhere/ca.pem")
    async with Client(server.address, tls=False) as client:
        await client.get_run("r1")
    monkeypatch.setenv("CAIRN_TLS", "1")
    monkeypatch.delenv("CAIRN_TLS_CA")
    async with Client(server.address, failover_timeout=0.3) as client:
        with pytest.raises(UnavailableError):  # TLS now, and this server speaks plaintext
            await client.get_run("r1")
    assert len(server.recorder.of("GetRun")) == 1


def test_a_client_certificate_needs_its_key(pki: Pki) -> None:
    with pytest.raises(ValueError, match=re.escape("tls.cert_file is set but not key_file")):
        SyncClient("127.0.0.1:1", tls=TlsConfig(ca_file=pki.ca_file, cert_file=pki.client_cert))


def test_a_file_that_is_not_pem_is_refused(tmp_path: pathlib.Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate")
    with pytest.raises(ValueError, match="is not PEM"):
        SyncClient("127.0.0.1:1", tls=TlsConfig(ca_file=tmp_path / "ca.pem"))


def test_the_credential_never_shows_in_repr() -> None:
    settings = ConnectionSettings.resolve(token=TOKEN, namespace="team-a")
    assert TOKEN not in repr(settings)
    assert "credential=set" in repr(settings)


# --- TLS ---------------------------------------------------------------------------------


async def test_client_reaches_a_tls_server_with_the_ca(pki: Pki) -> None:
    with recording_server(pki.server_credentials()) as tls_server:
        tls = TlsConfig(ca_file=str(pki.ca_file))
        async with Client(tls_server.address, token=TOKEN, tls=tls) as client:
            assert (await client.get_run("r1")).run_id == "r1"
            assert [e.event_id async for e in client.join("r1")] == [1]
    assert_carried(tls_server.recorder.of("GetRun"), f"Bearer {TOKEN}", None)
    assert_carried(tls_server.recorder.of("JoinRun"), f"Bearer {TOKEN}", None)


async def test_without_the_ca_the_tls_handshake_fails_as_unavailable(pki: Pki) -> None:
    with recording_server(pki.server_credentials()) as tls_server:
        async with Client(tls_server.address, tls=True, failover_timeout=0.3) as client:
            with pytest.raises(UnavailableError):
                await client.get_run("r1")
        async with Client(tls_server.address, failover_timeout=0.3) as client:  # plaintext
            with pytest.raises(UnavailableError):
                await client.get_run("r1")
        assert tls_server.recorder.calls == []


async def test_tls_settings_come_from_the_environment(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRN_TLS_CA", str(pki.ca_file))
    monkeypatch.setenv("CAIRN_API_KEY", API_KEY)
    with recording_server(pki.server_credentials()) as tls_server:
        async with Client(tls_server.address) as client:
            await client.get_run("r1")
        # tls=True keeps the environment's CA: only the settings given replace it.
        async with Client(tls_server.address, tls=True) as client:
            await client.get_run("r1")
    assert len(tls_server.recorder.of("GetRun")) == 2
    assert_carried(tls_server.recorder.of("GetRun"), f"Bearer {API_KEY}", None)


def test_server_name_overrides_the_name_checked_in_the_certificate(pki: Pki) -> None:
    with recording_server(pki.server_credentials(named=True)) as tls_server:
        tls = TlsConfig(ca_file=pki.ca_file, server_name="cairn.test")
        with CairnSaver(tls_server.address, api_key=API_KEY, tls=tls) as saver:
            assert saver.get_tuple({"configurable": {"thread_id": "t1"}}) is None
        with (
            CairnSaver(
                tls_server.address, tls=TlsConfig(ca_file=pki.ca_file), failover_timeout=0.3
            ) as saver,
            pytest.raises(UnavailableError),
        ):
            saver.get_tuple({"configurable": {"thread_id": "t1"}})
    assert_carried(tls_server.recorder.of("GetTuple"), f"Bearer {API_KEY}", None)


async def test_mutual_tls_presents_the_client_certificate(pki: Pki) -> None:
    tls = TlsConfig(ca_file=pki.ca_file, cert_file=pki.client_cert, key_file=pki.client_key)
    with recording_server(pki.server_credentials(mutual=True)) as mtls_server:
        async with Client(mtls_server.address, tls=tls, namespace="team-a") as client:
            await client.get_run("r1")
        worker = Worker(mtls_server.address, functions=[echo], tls=tls)
        running = asyncio.ensure_future(worker.run())
        try:
            await asyncio.wait_for(worker.connected.wait(), 10)
        finally:
            await worker.stop(grace=1)
            await asyncio.wait_for(running, 10)
        without = TlsConfig(ca_file=pki.ca_file)
        async with Client(mtls_server.address, tls=without, failover_timeout=0.3) as client:
            with pytest.raises(UnavailableError):
                await client.get_run("r1")
    assert [call.client_cn for call in mtls_server.recorder.calls] == ["worker-1", "worker-1"]


# --- refusals -----------------------------------------------------------------------------


async def test_refusals_raise_typed_errors_on_unary_and_streaming_calls(server: Server) -> None:
    async with Client(server.address, token="expired") as client:
        with pytest.raises(UnauthenticatedError) as unauthenticated:
            await client.get_run("r1")
        with pytest.raises(UnauthenticatedError):
            async for _ in client.stream("workflow", 1, thread_id="t1"):
                pass
    assert unauthenticated.value.reason == "UNAUTHENTICATED"
    assert unauthenticated.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert unauthenticated.value.message == "the JWT expired"
    async with Client(server.address, token="reader") as client:
        with pytest.raises(PermissionDeniedError) as denied:
            await client.cancel_run("r1")
    assert denied.value.reason == "PERMISSION_DENIED"
    with (
        CairnSaver(server.address, api_key="reader") as saver,
        pytest.raises(PermissionDeniedError),
    ):
        saver.get_tuple({"configurable": {"thread_id": "t1"}})


# --- a credential in clear ------------------------------------------------------------------


async def test_a_credential_without_tls_to_another_host_is_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="cairn.connection")
    # Channels connect on first use: creating them sends nothing anywhere.
    async with Client(["192.0.2.1:50051", "192.0.2.2:50051"], token=TOKEN):
        pass
    warnings = [r.getMessage() for r in caplog.records if r.name == "cairn.connection"]
    assert len(warnings) == 1
    assert "192.0.2.1:50051 without TLS" in warnings[0]
    assert TOKEN not in warnings[0]
    caplog.clear()
    async with Client("127.0.0.1:50051", token=TOKEN), Client("192.0.2.1:50051"):
        pass  # loopback, or no credential: nothing to warn about
    assert [r for r in caplog.records if r.name == "cairn.connection"] == []


@pytest.mark.parametrize(
    ("target", "local"),
    [
        ("127.0.0.1:50051", True),
        ("localhost:50051", True),
        ("[::1]:50051", True),
        ("dns:///localhost:50051", True),
        ("ipv4:127.0.0.2:1", True),
        ("unix:/tmp/cairn.sock", True),
        ("10.0.0.1:50051", False),
        ("cairn.internal:50051", False),
        ("dns://8.8.8.8/cairn.internal:50051", False),
        ("[2001:db8::1]:50051", False),
    ],
)
def test_loopback_targets(target: str, local: bool) -> None:
    assert is_loopback(target) is local


# --- the `cairn` inspection commands -------------------------------------------------------


def cairn(*argv: str) -> int:
    """`cairn <argv>` in this process, as cli.main runs an inspection command."""
    parser = argparse.ArgumentParser(prog="cairn")
    inspection.add_commands(parser.add_subparsers(dest="command", required=True))
    return inspection.run(parser.parse_args(list(argv)))


@pytest.mark.parametrize(
    "command",
    [
        ["threads"],
        ["state", "t1"],
        ["history", "t1"],
        ["runs", "t1"],
        ["workers"],
        ["cancel", "r1"],
    ],
)
def test_inspection_commands_take_credential_and_namespace_options(
    server: Server, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cairn(*command, "--address", server.address, "--token", TOKEN, "--namespace", "ops") == 0
    assert_carried(server.recorder.calls, f"Bearer {TOKEN}", "ops")
    assert capsys.readouterr().err == ""


def test_inspection_options_default_to_the_environment(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRN_API_KEY", API_KEY)
    monkeypatch.setenv("CAIRN_NAMESPACE", "from-env")
    assert cairn("threads", "--address", server.address) == 0
    assert cairn("threads", "--address", server.address, "--namespace", "from-flag") == 0
    first, second = server.recorder.of("ListThreads")
    assert (first.bearer, first.namespace) == (f"Bearer {API_KEY}", "from-env")
    assert (second.bearer, second.namespace) == (f"Bearer {API_KEY}", "from-flag")


def test_inspection_reaches_a_mutual_tls_server(
    pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    with recording_server(pki.server_credentials(mutual=True, named=True)) as mtls_server:
        code = cairn(
            "workers",
            "--address",
            mtls_server.address,
            "--api-key",
            API_KEY,
            "--tls-ca",
            str(pki.ca_file),
            "--tls-cert",
            str(pki.client_cert),
            "--tls-key",
            str(pki.client_key),
            "--tls-server-name",
            "cairn.test",
        )
    assert code == 0
    (call,) = mtls_server.recorder.of("ListWorkers")
    assert (call.bearer, call.client_cn) == (f"Bearer {API_KEY}", "worker-1")
    assert "no workers connected" in capsys.readouterr().out


def test_inspection_with_a_bad_tls_option_says_why(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cairn("threads", "--tls-ca", "/nowhere/ca.pem") == 1
    assert "cairn threads: cannot read the TLS CA certificate '/nowhere/ca.pem'" in (
        capsys.readouterr().err
    )
    assert cairn("threads", "--no-tls", "--tls-ca", "/nowhere/ca.pem") == 1
    assert "--no-tls contradicts" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: one credential at most
        cairn("threads", "--token", TOKEN, "--api-key", API_KEY)


async def test_a_refused_inspection_prints_the_reason(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await asyncio.to_thread(
        cairn, "cancel", "r1", "--address", server.address, "--token", "reader"
    )
    assert code == 1
    assert capsys.readouterr().out.startswith("PermissionDeniedError: PERMISSION_DENIED:")
