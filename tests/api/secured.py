"""A real Cairn server that checks who calls (bearer JWTs signed with a shared
secret, and API keys from an access file), the credentials of the callers
the identity and namespace API tests use, and in-process SDK workers.

    async with secured_server(tmp_path, api_keys={"ci": ["team-a:writer"]}) as served:
        async with stubs(served.address) as api:
            await api.threads.GetThread(request, metadata=as_caller(token("alice",
                "team-a:reader"), "team-a"))
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import time
from collections.abc import AsyncIterator, Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
import jwt
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2_grpc

from cairn import Worker
from cairn._errors import error_info
from cairn.v1 import (
    checkpoint_service_pb2,
    checkpoint_service_pb2_grpc,
    graph_service_pb2_grpc,
    run_service_pb2,
    run_service_pb2_grpc,
    schedule_service_pb2,
    schedule_service_pb2_grpc,
    store_service_pb2,
    store_service_pb2_grpc,
    thread_service_pb2,
    thread_service_pb2_grpc,
    worker_service_pb2,
    worker_service_pb2_grpc,
)
from cairn_server.auth import AuthConfig, hash_api_key, new_api_key
from cairn_server.server import CairnServer, ServerConfig, create_server
from tests.api.conftest import Api

cpb = checkpoint_service_pb2
rpb = run_service_pb2
schdpb = schedule_service_pb2
spb = store_service_pb2
tpb = thread_service_pb2
wpb = worker_service_pb2

SECRET = b"cairn-api-tests-shared-secret-32"
"""The HS256 secret the test servers verify tokens with (32 bytes)."""
OTHER_SECRET = b"not-the-servers-secret-xxxxxxxxx"
WAIT = 10.0
"""Seconds any one call or wait may take before the test fails."""

Metadata = tuple[tuple[str, str], ...]


def token(subject: str, *grants: str, lifetime: float = 300.0, secret: bytes = SECRET) -> str:
    """An HS256 JWT for `subject` with `grants` in the `permissions` claim,
    expiring in `lifetime` seconds (negative: already expired)."""
    claims = {"sub": subject, "exp": int(time.time() + lifetime), "permissions": list(grants)}
    return jwt.encode(claims, secret, algorithm="HS256")


def as_caller(credential: str | None, namespace: str | None) -> Metadata:
    """Call metadata: the bearer credential (none when None) and the namespace."""
    metadata = []
    if credential is not None:
        metadata.append(("authorization", f"Bearer {credential}"))
    if namespace is not None:
        metadata.append(("cairn-namespace", namespace))
    return tuple(metadata)


ADMIN = token("root", "*:admin", lifetime=3600)
"""An admin of every namespace, who sets up and inspects what tests check."""


@dataclass
class Secured:
    """A running server that checks identity."""

    server: CairnServer
    address: str
    api_keys: dict[str, str] = field(default_factory=dict)
    """The access file's keys by their entry's name."""


@contextlib.asynccontextmanager
async def secured_server(
    tmp_path: pathlib.Path,
    *,
    api_keys: dict[str, list[str]] | None = None,
    **limits: Any,
) -> AsyncIterator[Secured]:
    """The real server on 127.0.0.1 port 0 (SQLite in `tmp_path`), verifying
    JWTs signed with SECRET and the API keys named in `api_keys` (name to
    grants); `limits` are further AuthConfig fields (rate_limit, ...)."""
    keys = {name: new_api_key() for name in api_keys or {}}
    access_file = None
    if api_keys:
        entries = [
            {"name": name, "sha256": hash_api_key(keys[name]), "grants": grants}
            for name, grants in api_keys.items()
        ]
        path = tmp_path / "access.json"
        path.write_text(json.dumps({"api_keys": entries}))
        access_file = str(path)
    config = ServerConfig(
        address="127.0.0.1:0",
        store_url=f"sqlite:///{tmp_path / 'cairn.db'}",
        auth=AuthConfig(jwt_secret=SECRET, access_file=access_file, **limits),
    )
    instance, port = await create_server(config)
    try:
        yield Secured(instance, f"127.0.0.1:{port}", keys)
    finally:
        await instance.stop(grace=0.5)


@contextlib.asynccontextmanager
async def stubs(address: str) -> AsyncIterator[Api]:
    """The raw stubs of every service on one channel without credentials
    (each call passes its own metadata)."""
    async with grpc.aio.insecure_channel(address) as channel:
        yield Api(
            run_service_pb2_grpc.RunServiceStub(channel),
            thread_service_pb2_grpc.ThreadServiceStub(channel),
            worker_service_pb2_grpc.WorkerServiceStub(channel),
            checkpoint_service_pb2_grpc.CheckpointServiceStub(channel),
            health_pb2_grpc.HealthStub(channel),
            graph_service_pb2_grpc.GraphServiceStub(channel),
            store_service_pb2_grpc.StoreServiceStub(channel),
            schedule_service_pb2_grpc.ScheduleServiceStub(channel),
        )


async def refused(
    call: Awaitable[Any], code: grpc.StatusCode, reason: str
) -> error_details_pb2.ErrorInfo:
    """Await `call`, which must fail with `code` and an ErrorInfo `reason`
    (domain cairn.dev); returns the ErrorInfo."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(call, WAIT)
    error = caught.value
    assert error.code() == code, f"{error.code()} ({error.details()}), expected {code}"
    info = error_info(error)
    assert info is not None, f"{error.code()} ({error.details()}) carries no ErrorInfo"
    assert (info.domain, info.reason) == ("cairn.dev", reason), error.details()
    return info


@contextlib.asynccontextmanager
async def connected(
    api: Api, metadata: Metadata, hello: wpb.WorkerHello
) -> AsyncIterator[wpb.ConnectResponse]:
    """A raw worker stream that sent `hello`: yields the service's welcome
    and closes the stream at exit. A refusal raises its AioRpcError."""
    call = api.workers.Connect(metadata=metadata, timeout=WAIT)
    try:
        await asyncio.wait_for(call.write(wpb.ConnectRequest(hello=hello)), WAIT)
        welcome = await asyncio.wait_for(call.read(), WAIT)
        assert welcome is not grpc.aio.EOF and welcome.HasField("welcome"), welcome
        yield welcome
    finally:
        call.cancel()


def hello(*names: str, relay: str = "", namespace: str = "") -> wpb.WorkerHello:
    """A hello registering `names` as entrypoints (a relay's: of `namespace`)."""
    return wpb.WorkerHello(
        worker_id="probe",
        registrations=[
            wpb.Registration(name=name, kind=wpb.TASK_KIND_ENTRYPOINT, namespace=namespace)
            for name in names
        ],
        relay_replica_id=relay,
    )


class Workers:
    """In-process SDK workers on the test's event loop, stopped by `stop_all`."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._running: list[tuple[Worker, asyncio.Task[None]]] = []

    async def start(self, functions: Iterable[Any], **options: Any) -> Worker:
        """A worker serving `functions`, once it is connected (token=,
        namespace=, worker_id= ... as Worker takes them)."""
        worker = Worker(self.address, functions=functions, **options)
        task = asyncio.ensure_future(worker.run())
        self._running.append((worker, task))
        connected = asyncio.ensure_future(worker.connected.wait())
        done, _ = await asyncio.wait({connected, task}, timeout=WAIT, return_when="FIRST_COMPLETED")
        if connected not in done:
            connected.cancel()
            raise AssertionError(f"worker {options.get('worker_id', '')!r} did not connect")
        return worker

    async def stop_all(self) -> None:
        for worker, task in reversed(self._running):
            await worker.stop(grace=1)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 5)
        self._running.clear()


async def _or_error(call: Awaitable[Any]) -> Any:
    """A response as a dict, or the code of its error."""
    try:
        response = await asyncio.wait_for(call, WAIT)
    except grpc.aio.AioRpcError as error:
        return {"error": error.code().name}
    return json_format.MessageToDict(response)


async def snapshot(api: Api, namespace: str) -> dict[str, Any]:
    """What an admin sees in `namespace`: its threads, each with its state,
    history and runs, its LangGraph checkpoints with their writes, its
    memories and its schedules."""
    md = as_caller(ADMIN, namespace)
    listed = await api.threads.ListThreads(
        tpb.ListThreadsRequest(page_size=1000), metadata=md, timeout=WAIT
    )
    seen: dict[str, Any] = {"threads": json_format.MessageToDict(listed)}
    for thread in listed.threads:
        thread_id = thread.thread_id
        seen[thread_id] = {
            "state": await _or_error(
                api.threads.GetState(tpb.GetStateRequest(thread_id=thread_id), metadata=md)
            ),
            "history": await _or_error(
                api.threads.GetStateHistory(
                    tpb.GetStateHistoryRequest(thread_id=thread_id), metadata=md
                )
            ),
            "runs": await _or_error(
                api.runs.ListRuns(rpb.ListRunsRequest(thread_id=thread_id), metadata=md)
            ),
        }
    seen["checkpoints"] = await _or_error(
        api.checkpoints.ListCheckpoints(cpb.ListCheckpointsRequest(page_size=1000), metadata=md)
    )
    seen["memories"] = await _or_error(
        api.store.SearchItems(spb.SearchItemsRequest(limit=1000, refresh_ttl=False), metadata=md)
    )
    seen["schedules"] = await _or_error(
        api.schedules.ListSchedules(schdpb.ListSchedulesRequest(page_size=1000), metadata=md)
    )
    return seen
