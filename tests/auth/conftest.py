"""Keys, tokens and an intercepted test server for the auth tests.

The server runs the real AuthInterceptor (and DecodingInterceptor) in front
of small fake servicers that answer with who they were told is calling,
plus the real health and reflection services, on 127.0.0.1 port 0.
"""

from __future__ import annotations

import json
import pathlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from google.protobuf import struct_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from cairn.v1 import (
    run_service_pb2,
    run_service_pb2_grpc,
    thread_pb2,
    thread_service_pb2,
    thread_service_pb2_grpc,
    worker_service_pb2,
    worker_service_pb2_grpc,
)
from cairn_server.api.decoding import DecodingInterceptor
from cairn_server.auth import (
    Authenticator,
    AuthInterceptor,
    RateLimiter,
    current,
    hash_api_key,
    new_api_key,
)

SECRET = b"s" * 32
"""The HS256 secret of the test servers."""


def hs_token(
    sub: str = "alice", *, secret: bytes = SECRET, lifetime: float = 300, **claims: Any
) -> str:
    """An HS256 token for `sub` expiring in `lifetime` seconds (negative: expired)."""
    payload = {"sub": sub, "exp": int(time.time() + lifetime), **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks_of(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    """The JWKS publishing `key`'s public half under `kid`."""
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**public, "kid": kid, "use": "sig"}]}


def rs_token(key: rsa.RSAPrivateKey, kid: str | None, sub: str = "alice", **claims: Any) -> str:
    payload = {"sub": sub, "exp": int(time.time() + 300), **claims}
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload, key, algorithm="RS256", headers=headers)


@dataclass
class Keys:
    """API keys of the test server's access file, by what they may do."""

    reader: str
    writer: str
    worker: str
    admin: str
    nobody: str
    """Holds a grant only in another namespace (team-b)."""


def write_access_file(path: pathlib.Path, entries: dict[str, list[Any]]) -> str:
    path.write_text(json.dumps(entries))
    return str(path)


@pytest.fixture
def keys() -> Keys:
    return Keys(*(new_api_key() for _ in range(5)))


@pytest.fixture
def access_file(tmp_path: pathlib.Path, keys: Keys) -> str:
    grants = {
        "reader": ["team-a:reader"],
        "writer": ["team-a:writer"],
        "worker": ["team-a:worker:fetch"],
        "admin": ["*:admin"],
        "nobody": ["team-b:writer"],
    }
    entries = [
        {"name": name, "sha256": hash_api_key(getattr(keys, name)), "grants": granted}
        for name, granted in grants.items()
    ]
    return write_access_file(tmp_path / "access.json", {"api_keys": entries})


# --- fake servicers: they answer with current() --------------------------------------------


def _who() -> struct_pb2.Struct:
    caller = current()
    who = struct_pb2.Struct()
    who.update({"caller": caller.principal.name, "namespace": caller.namespace})
    return who


class Threads(thread_service_pb2_grpc.ThreadServiceServicer):
    async def GetThread(self, request: Any, context: Any) -> Any:
        thread = thread_pb2.Thread(thread_id=request.thread_id, metadata=_who())
        return thread_service_pb2.GetThreadResponse(thread=thread)

    async def DeleteThread(self, request: Any, context: Any) -> Any:
        return thread_service_pb2.DeleteThreadResponse()


class Runs(run_service_pb2_grpc.RunServiceServicer):
    async def JoinRun(self, request: Any, context: Any) -> AsyncIterator[Any]:
        for _ in range(2):
            yield run_service_pb2.JoinRunResponse()


class Workers(worker_service_pb2_grpc.WorkerServiceServicer):
    async def Connect(self, requests: Any, context: Any) -> AsyncIterator[Any]:
        async for _ in requests:
            welcome = worker_service_pb2.Welcome(worker_id=current().principal.name)
            yield worker_service_pb2.ConnectResponse(welcome=welcome)
            return


@dataclass
class Served:
    address: str
    server: grpc.aio.Server


async def serve(
    authenticator: Authenticator,
    *,
    rate_limiter: RateLimiter | None = None,
    credentials: grpc.ServerCredentials | None = None,
    extra: Callable[[grpc.aio.Server], None] | None = None,
) -> Served:
    server = grpc.aio.server(
        interceptors=[
            AuthInterceptor(authenticator, rate_limiter=rate_limiter),
            DecodingInterceptor(),
        ]
    )
    thread_service_pb2_grpc.add_ThreadServiceServicer_to_server(Threads(), server)
    run_service_pb2_grpc.add_RunServiceServicer_to_server(Runs(), server)
    worker_service_pb2_grpc.add_WorkerServiceServicer_to_server(Workers(), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(("cairn.v1.ThreadService", reflection.SERVICE_NAME), server)
    if extra is not None:
        extra(server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    return Served(f"127.0.0.1:{port}", server)


@pytest.fixture
def log_records(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The audit log's records (caplog at INFO for cairn.audit)."""
    with caplog.at_level("INFO", logger="cairn.audit"):
        yield caplog
