"""TLS for the server and for the relay streams between replicas, and the
caller's name in a verified client certificate.

With `--tls-client-ca` the server requires a client certificate signed by
that CA (mTLS): a client without one cannot even connect. Its subject then
names the caller, and the access file gives the subject its grants.

A replica relays tasks over WorkerService.Connect streams to the others;
those connect with TLS whenever this server has TLS (every replica of one
deployment is configured alike), trust `--tls-ca` (default the client CA,
else the system roots) and present this replica's own certificate, so that
replicas requiring mTLS admit each other. The certificate must then allow
client authentication (extended key usage clientAuth, or none at all).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import grpc

from cairn_server.auth.options import AuthConfig


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def server_credentials(config: AuthConfig) -> grpc.ServerCredentials | None:
    """The server's TLS credentials; None when it serves without TLS."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    client_ca = _read(config.tls_client_ca) if config.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(_read(config.tls_key), _read(config.tls_cert))],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def relay_channel_credentials(config: AuthConfig) -> grpc.ChannelCredentials | None:
    """Credentials for this replica's relay streams to the other replicas; None
    (plaintext) when this server has no TLS."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    trusted = config.tls_ca or config.tls_client_ca
    return grpc.ssl_channel_credentials(
        root_certificates=_read(trusted) if trusted else None,
        private_key=_read(config.tls_key),
        certificate_chain=_read(config.tls_cert),
    )


def subject_of(auth_context: Mapping[str, Sequence[bytes]] | None) -> str | None:
    """The RFC 4514 subject (`CN=worker-1,OU=bots,O=Acme`) of the client
    certificate grpc verified for this call, or None without one.

    grpc puts it under `x509_subject`; older versions gave only
    `x509_common_name`, which becomes `CN=<name>`."""
    if not auth_context:
        return None
    for key, prefix in (("x509_subject", ""), ("x509_common_name", "CN=")):
        values = auth_context.get(key)
        if values:
            text = values[0].decode("utf-8", "replace").strip()
            if text:
                return prefix + text
    return None
