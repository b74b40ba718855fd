"""TLS and client certificates (mTLS) on a real server, with trustme's CAs."""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cairn.v1 import (
    thread_service_pb2,
    thread_service_pb2_grpc,
    worker_service_pb2,
    worker_service_pb2_grpc,
)
from cairn_server.auth import (
    AuthConfig,
    Authenticator,
    hash_api_key,
    new_api_key,
    relay_channel_credentials,
    server_credentials,
    subject_of,
)
from tests.auth.conftest import Served, serve
from tests.auth.test_interceptor import refused, who

WAIT = 10


@dataclass
class Pki:
    ca: trustme.CA
    config: AuthConfig
    worker: trustme.LeafCert
    """A client certificate the access file maps to team-a:worker."""
    stranger: trustme.LeafCert
    """Signed by the client CA, but not in the access file."""
    outsider: trustme.LeafCert
    """Signed by another CA."""
    reader_key: str


def _write(directory: pathlib.Path, name: str, cert: trustme.LeafCert) -> tuple[str, str]:
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_path))
    return str(cert_path), str(key_path)


@pytest.fixture
def pki(tmp_path: pathlib.Path) -> Pki:
    ca = trustme.CA()
    replica = ca.issue_cert(
        "127.0.0.1", "localhost", common_name="replica-1", organization_name="Cairn",
        organization_unit_name="replicas",
    )  # fmt: skip
    worker = ca.issue_cert(
        "worker-1.example", common_name="worker-1", organization_name="Acme",
        organization_unit_name="bots",
    )  # fmt: skip
    stranger = ca.issue_cert(
        "stranger.example", common_name="stranger", organization_name="Acme",
        organization_unit_name="bots",
    )  # fmt: skip
    outsider = trustme.CA().issue_cert(
        "worker-1.example", common_name="worker-1", organization_name="Acme",
        organization_unit_name="bots",
    )  # fmt: skip
    cert, key = _write(tmp_path, "replica", replica)
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    reader_key = new_api_key()
    access = tmp_path / "access.json"
    access.write_text(
        json.dumps(
            {
                "api_keys": [
                    {
                        "name": "reader",
                        "sha256": hash_api_key(reader_key),
                        "grants": ["team-a:reader"],
                    }
                ],
                "certificates": [
                    # Attributes in another order than grpc reports them: still the same subject.
                    {"subject": "O=Acme,OU=bots,CN=worker-1", "grants": ["team-a:worker:fetch"]},
                    {"subject": "CN=replica-1,OU=replicas,O=Cairn", "grants": ["*:replica"]},
                ],
            }
        )
    )
    config = AuthConfig(
        tls_cert=cert, tls_key=key, tls_client_ca=str(ca_path), access_file=str(access)
    )
    return Pki(ca, config, worker, stranger, outsider, reader_key)


@pytest.fixture
async def served(pki: Pki) -> AsyncIterator[Served]:
    credentials = server_credentials(pki.config)
    assert credentials is not None
    instance = await serve(Authenticator.from_config(pki.config), credentials=credentials)
    try:
        yield instance
    finally:
        await instance.server.stop(None)


def client_credentials(pki: Pki, cert: trustme.LeafCert | None) -> grpc.ChannelCredentials:
    if cert is None:
        return grpc.ssl_channel_credentials(pki.ca.cert_pem.bytes())
    return grpc.ssl_channel_credentials(
        pki.ca.cert_pem.bytes(),
        cert.private_key_pem.bytes(),
        b"".join(blob.bytes() for blob in cert.cert_chain_pems),
    )


async def check_health(channel: grpc.aio.Channel) -> None:
    response = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=WAIT
    )
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def connect_as(channel: grpc.aio.Channel, namespace: str = "team-a") -> str:
    """Who the servicer saw open a WorkerService.Connect stream in `namespace`."""

    async def hello() -> AsyncIterator[worker_service_pb2.ConnectRequest]:
        yield worker_service_pb2.ConnectRequest(hello=worker_service_pb2.WorkerHello())

    stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
    metadata = (("cairn-namespace", namespace),)
    answers = [m async for m in stub.Connect(hello(), metadata=metadata, timeout=WAIT)]
    return str(answers[0].welcome.worker_id)


@pytest.mark.parametrize("who_connects", ["no certificate", "another CA's certificate"])
async def test_a_client_without_a_trusted_certificate_cannot_connect(
    served: Served, pki: Pki, who_connects: str
) -> None:
    cert = None if who_connects == "no certificate" else pki.outsider
    async with grpc.aio.secure_channel(served.address, client_credentials(pki, cert)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(
                health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest()), WAIT
            )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_mapped_certificate_subject_gets_its_grants(served: Served, pki: Pki) -> None:
    async with grpc.aio.secure_channel(
        served.address, client_credentials(pki, pki.worker)
    ) as channel:
        await check_health(channel)
        assert await connect_as(channel) == "cert:O=Acme,OU=bots,CN=worker-1"
        # A worker grant reads nothing.
        threads = thread_service_pb2_grpc.ThreadServiceStub(channel)
        await refused(
            threads.GetThread(
                thread_service_pb2.GetThreadRequest(thread_id="t"),
                metadata=(("cairn-namespace", "team-a"),),
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_DENIED",
        )


async def test_a_certificate_not_in_the_access_file_is_unauthenticated(
    served: Served, pki: Pki
) -> None:
    async with grpc.aio.secure_channel(
        served.address, client_credentials(pki, pki.stranger)
    ) as channel:
        await check_health(channel)
        error = await refused(
            connect_as(channel), grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"
        )
        assert "CN=stranger,OU=bots,O=Acme" in (error.details() or "")
        assert "not in the server's access file" in (error.details() or "")


async def test_a_bearer_credential_names_the_caller_over_the_certificate(
    served: Served, pki: Pki
) -> None:
    async with grpc.aio.secure_channel(
        served.address, client_credentials(pki, pki.worker)
    ) as channel:
        metadata = (("authorization", f"Bearer {pki.reader_key}"), ("cairn-namespace", "team-a"))
        assert await who(channel, metadata) == {"caller": "key:reader", "namespace": "team-a"}


async def test_relay_credentials_present_the_replica_certificate(served: Served, pki: Pki) -> None:
    credentials = relay_channel_credentials(pki.config)
    assert credentials is not None
    async with grpc.aio.secure_channel(served.address, credentials) as channel:
        assert await connect_as(channel) == "cert:CN=replica-1,OU=replicas,O=Cairn"
    assert relay_channel_credentials(AuthConfig()) is None
    assert server_credentials(AuthConfig()) is None


def test_subject_of_reads_grpcs_auth_context() -> None:
    assert subject_of({"x509_subject": [b"CN=a,O=b"], "x509_common_name": [b"a"]}) == "CN=a,O=b"
    assert subject_of({"x509_common_name": [b"a"]}) == "CN=a"
    assert subject_of({"transport_security_type": [b"insecure"]}) is None
    assert subject_of(None) is None
