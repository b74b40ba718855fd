"""How every client surface reaches the service: TLS, the caller's credential
and its namespace, resolved once from arguments and the environment.

    Client("cairn.internal:50051", api_key="cairn_...", namespace="team-a", tls=True)
    Worker(address, functions=[...], token=jwt, tls=TlsConfig(ca_file="ca.pem"))

An argument not given is read from the environment:

    CAIRN_TOKEN            a JWT               } at most one of the two; sent as
    CAIRN_API_KEY          a static API key    } `authorization: Bearer <credential>`
    CAIRN_NAMESPACE        sent as `cairn-namespace` (the server's `default` if unset)
    CAIRN_TLS              1/true: TLS with the system's roots (0/false: plaintext)
    CAIRN_TLS_CA           the CA that signed the server's certificate (implies TLS)
    CAIRN_TLS_CERT         } the client's certificate and key, for mTLS (imply TLS)
    CAIRN_TLS_KEY          }
    CAIRN_TLS_SERVER_NAME  the name the server's certificate must carry

`ConnectionSettings` is the one place channels are built: Client, SyncClient,
Worker and CairnSaver (sync and asyncio) all get theirs from it, and its
interceptors put the credential and namespace on every call, streams included.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

log = logging.getLogger("cairn.connection")

ChannelOptions = Sequence[tuple[str, Any]]

_NAMESPACE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
# What a gRPC metadata value may carry (visible ASCII, no spaces): checked here
# so that a pasted credential with a newline fails at construction, not per call.
_CREDENTIAL = re.compile(r"[\x21-\x7e]+")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """TLS settings of a connection to the service; pass as `tls=` to `Client`,
    `SyncClient`, `Worker` or `CairnSaver`.

    `ca_file` is the CA certificate (PEM) that signed the server's certificate
    (default: the system's roots); `cert_file` and `key_file` are the client's
    certificate and private key (PEM) for mutual TLS, given together;
    `server_name` is the name to expect in the server's certificate when it
    differs from the address's host. A setting left None is read from its
    CAIRN_TLS_* environment variable; `tls=True` is `TlsConfig()`. The files are
    read when the client is created, so a wrong path fails there.

        tls = TlsConfig(ca_file="ca.pem", cert_file="worker.pem", key_file="worker-key.pem")
        async with Client("cairn.internal:50051", tls=tls) as client:
            ...
    """

    ca_file: str | os.PathLike[str] | None = None
    cert_file: str | os.PathLike[str] | None = None
    key_file: str | os.PathLike[str] | None = None
    server_name: str | None = None


class ConnectionSettings:
    """The resolved TLS, credential and namespace of one client surface, and
    the factory of its channels. Built with `resolve`; never shows the
    credential in its repr."""

    __slots__ = (
        "_metadata",
        "_server_name",
        "_ssl",
        "_warned",
        "client_certificate",
        "has_credential",
        "namespace",
        "tls",
    )

    def __init__(
        self,
        *,
        credential: str | None,
        namespace: str | None,
        tls: grpc.ChannelCredentials | None,
        server_name: str | None,
        client_certificate: bool = False,
    ) -> None:
        self.client_certificate = client_certificate
        self.namespace = namespace
        self.has_credential = credential is not None
        self.tls = tls is not None
        self._ssl = tls
        self._server_name = server_name
        metadata: list[tuple[str, str]] = []
        if credential is not None:
            metadata.append(("authorization", f"Bearer {credential}"))
        if namespace is not None:
            metadata.append(("cairn-namespace", namespace))
        self._metadata = tuple(metadata)
        self._warned = False

    def __repr__(self) -> str:
        return (
            f"ConnectionSettings(tls={self.tls}, namespace={self.namespace!r},"
            f" credential={'set' if self.has_credential else 'none'})"
        )

    @classmethod
    def resolve(
        cls,
        *,
        token: str | None = None,
        api_key: str | None = None,
        namespace: str | None = None,
        tls: bool | TlsConfig | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ConnectionSettings:
        """The settings from the arguments, each one not given taken from the
        environment. Raises ValueError for a contradiction (token and api_key,
        a certificate without its key), a bad namespace, or a TLS file that
        cannot be read."""
        env = os.environ if environ is None else environ
        credential = _credential(token, api_key, env)
        if not namespace:
            namespace, source = _env(env, "CAIRN_NAMESPACE"), "CAIRN_NAMESPACE"
        else:
            source = "namespace"
        if namespace is not None and not _NAMESPACE.fullmatch(namespace):
            raise ValueError(
                f"{source}: {namespace!r} is not a namespace name (1 to 63 characters of"
                " a-z, 0-9, '.', '_' and '-', starting with a letter or a digit)"
            )
        resolved = _tls_config(tls, env)
        if resolved is None:
            return cls(credential=credential, namespace=namespace, tls=None, server_name=None)
        config, sources = resolved
        return cls(
            credential=credential,
            namespace=namespace,
            tls=_channel_credentials(config, sources),
            server_name=config.server_name or None,
            client_certificate=config.cert_file is not None,
        )

    @property
    def unreachable_hint(self) -> str:
        """What to add to "cannot reach the server": a server that requires
        client certificates (mutual TLS) closes the connection of a client
        without one right after the TLS handshake, with no alert saying why,
        so the client sees only a closed socket."""
        if not self.tls or self.client_certificate:
            return ""
        return (
            "; if the server requires client certificates (mutual TLS), give one:"
            " tls=TlsConfig(cert_file=..., key_file=...) or CAIRN_TLS_CERT and CAIRN_TLS_KEY"
        )

    def aio_channel(self, target: str, options: ChannelOptions = ()) -> grpc.aio.Channel:
        """An asyncio channel to `target` (in the running event loop)."""
        options = self._options(target, options)
        interceptors = _aio_interceptors(self._metadata) if self._metadata else None
        if self._ssl is not None:
            return grpc.aio.secure_channel(target, self._ssl, options, interceptors=interceptors)
        return grpc.aio.insecure_channel(target, options, interceptors=interceptors)

    def sync_channel(self, target: str, options: ChannelOptions = ()) -> grpc.Channel:
        """A blocking channel to `target`."""
        options = self._options(target, options)
        if self._ssl is not None:
            channel = grpc.secure_channel(target, self._ssl, options)
        else:
            channel = grpc.insecure_channel(target, options)
        if self._metadata:
            channel = grpc.intercept_channel(channel, _SyncMetadata(self._metadata))
        return channel

    def _options(self, target: str, options: ChannelOptions) -> list[tuple[str, Any]]:
        found = list(options)
        if self.has_credential and self._ssl is None:
            self._warn_plaintext(target)
        if self._server_name is not None:
            found.append(("grpc.ssl_target_name_override", self._server_name))
        return found

    def _warn_plaintext(self, target: str) -> None:
        if self._warned or is_loopback(target):
            return
        self._warned = True
        log.warning(
            "sending a credential to %s without TLS: anyone on the network path can read"
            " it; pass tls=True or a TlsConfig (or set CAIRN_TLS / CAIRN_TLS_CA)",
            target,
        )


def is_loopback(target: str) -> bool:
    """Whether a gRPC target is on this machine (a loopback host or a Unix socket)."""
    if target.startswith(("unix:", "unix-abstract:")):
        return True
    rest = target
    for scheme in ("dns:", "ipv4:", "ipv6:"):
        if rest.startswith(scheme):
            rest = rest[len(scheme) :]
            if rest.startswith("//"):  # dns://authority/host:port
                rest = rest[2:].partition("/")[2]
            break
    rest = rest.lstrip("/")
    if rest.startswith("["):
        host = rest[1:].partition("]")[0]
    elif rest.count(":") == 1:
        host = rest.partition(":")[0]
    else:
        host = rest  # no port, or a bare IPv6 address
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _credential(token: str | None, api_key: str | None, env: Mapping[str, str]) -> str | None:
    """The bearer credential: an argument, else the environment's; one at most."""
    given = {name: value for name, value in (("token", token), ("api_key", api_key)) if value}
    if not given:
        given = {
            name: value
            for name in ("CAIRN_TOKEN", "CAIRN_API_KEY")
            if (value := _env(env, name)) is not None
        }
    if len(given) > 1:
        raise ValueError(f"give one credential, not both {' and '.join(given)}")
    if not given:
        return None
    ((source, credential),) = given.items()
    credential = credential.strip()
    if not _CREDENTIAL.fullmatch(credential):
        raise ValueError(f"{source} holds characters a credential cannot have (spaces, non-ASCII)")
    return credential


_TLS_VARIABLES = {
    "ca_file": "CAIRN_TLS_CA",
    "cert_file": "CAIRN_TLS_CERT",
    "key_file": "CAIRN_TLS_KEY",
    "server_name": "CAIRN_TLS_SERVER_NAME",
}


def _tls_config(
    tls: bool | TlsConfig | None, env: Mapping[str, str]
) -> tuple[TlsConfig, dict[str, str]] | None:
    """The TLS settings to use (None for plaintext): `tls` with the settings it
    leaves None taken from the environment, and where each came from."""
    if tls is False:
        return None
    if tls is None:
        files = [
            variable
            for name, variable in _TLS_VARIABLES.items()
            if name != "server_name" and _env(env, variable) is not None
        ]
        switch = (_env(env, "CAIRN_TLS") or "").lower()
        if switch and switch not in _TRUE | _FALSE:
            raise ValueError(f"CAIRN_TLS must be 1/true or 0/false, not {switch!r}")
        if switch in _FALSE and files:
            raise ValueError(f"CAIRN_TLS={switch} contradicts {', '.join(files)} (which imply TLS)")
        if switch not in _TRUE and not files:
            return None
        tls = TlsConfig()
    elif tls is True:
        tls = TlsConfig()
    elif not isinstance(tls, TlsConfig):
        raise TypeError(f"tls is True, False, None or a TlsConfig, not {tls!r}")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, variable in _TLS_VARIABLES.items():
        value = getattr(tls, name)
        if value is None and (value := _env(env, variable)) is not None:
            sources[name] = variable
        else:
            sources[name] = f"tls.{name}"
        values[name] = value
    return TlsConfig(**values), sources


def _channel_credentials(config: TlsConfig, sources: dict[str, str]) -> grpc.ChannelCredentials:
    """The channel credentials of `config`, its files read and checked now."""
    if (config.cert_file is None) != (config.key_file is None):
        given, missing = ("cert_file", "key_file")
        if config.cert_file is None:
            given, missing = missing, given
        raise ValueError(
            f"{sources[given]} is set but not {missing} ({_TLS_VARIABLES[missing]}):"
            " a client certificate needs its private key"
        )
    ca = _read_pem(config.ca_file, "CA certificate", sources["ca_file"], _is_cert)
    cert = _read_pem(config.cert_file, "client certificate", sources["cert_file"], _is_cert)
    key = _read_pem(config.key_file, "client key", sources["key_file"], _is_key)
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


def _is_cert(data: bytes) -> bool:
    return b"-----BEGIN CERTIFICATE-----" in data


def _is_key(data: bytes) -> bool:
    return b"PRIVATE KEY-----" in data


def _read_pem(
    path: str | os.PathLike[str] | None, what: str, source: str, check: Callable[[bytes], bool]
) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise ValueError(
            f"cannot read the TLS {what} {os.fspath(path)!r} from {source}: {error.strerror}"
        ) from error
    if not check(data):
        raise ValueError(f"the TLS {what} {os.fspath(path)!r} from {source} is not PEM")
    return data


# --- metadata on every call -----------------------------------------------------------


def _with_metadata(existing: Any, added: tuple[tuple[str, str], ...]) -> list[tuple[str, Any]]:
    """The call's own metadata, then the connection's for keys the call does
    not set itself (a per-call value wins)."""
    pairs = list(existing or ())
    keys = {key for key, _ in pairs}
    return pairs + [(key, value) for key, value in added if key not in keys]


class _AioMetadata:
    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def _details(self, details: Any) -> grpc.aio.ClientCallDetails:
        merged = grpc.aio.Metadata(*_with_metadata(details.metadata, self._metadata))
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, merged, details.credentials, details.wait_for_ready
        )


class _AioUnaryUnary(_AioMetadata, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _AioUnaryStream(_AioMetadata, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _AioStreamUnary(_AioMetadata, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


class _AioStreamStream(_AioMetadata, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


def _aio_interceptors(metadata: tuple[tuple[str, str], ...]) -> list[Any]:
    # An asyncio channel files each interceptor under one kind of call only.
    return [
        kind(metadata)
        for kind in (_AioUnaryUnary, _AioUnaryStream, _AioStreamUnary, _AioStreamStream)
    ]


class _SyncCallDetails(
    collections.namedtuple(
        "_SyncCallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,  # type: ignore[misc]
):
    """What the blocking channel's interceptor passes on: a call's details."""


class _SyncMetadata(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def _details(self, details: Any) -> _SyncCallDetails:
        return _SyncCallDetails(
            details.method,
            details.timeout,
            _with_metadata(details.metadata, self._metadata),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)
