"""Cairn Studio (DESIGN.md 8.5): a web page to see and steer threads and runs.

`cairn serve --ui-address 127.0.0.1:8080` serves it beside the gRPC server;
`cairn studio --address <any replica> --ui-address ...` serves it alone. The
page (static/) talks only to gateway.py, which calls the public gRPC API
(bridge.py) as the signed-in browser user: the Studio sees and changes
exactly what that user may through grpcurl or an SDK.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from cairn._credentials import ConnectionSettings
from cairn_server.studio.bridge import Bridge, CallFailed
from cairn_server.studio.gateway import Studio

__all__ = ["Bridge", "CallFailed", "Studio", "StudioConfig", "open_studio"]


@dataclass(frozen=True, slots=True)
class StudioConfig:
    """Where the Studio listens and which API it calls.

    `connection` gives the channel's TLS (and a client certificate for a
    server that requires one) but never a credential: each browser user
    brings their own. `https_cert`/`https_key` (PEM files) serve the page
    over HTTPS.
    """

    address: str
    server: str
    connection: ConnectionSettings
    https_cert: str | None = None
    https_key: str | None = None


async def open_studio(config: StudioConfig) -> tuple[Studio, int]:
    """Start serving; returns the Studio and its bound port. Raises OSError
    when the address cannot be bound."""
    host, _, port = config.address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--ui-address must be HOST:PORT, got {config.address!r}")
    context = None
    if config.https_cert and config.https_key:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(config.https_cert, config.https_key)
    channel = config.connection.aio_channel(config.server)
    studio = Studio(
        Bridge(channel),
        server=config.server,
        require_credential=config.connection.client_certificate,
    )
    try:
        bound = await studio.start(host.strip("[]"), int(port), ssl_context=context)
    except BaseException:
        await studio.stop()
        raise
    return studio, bound
