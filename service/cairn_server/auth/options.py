"""`cairn serve`'s identity, TLS and limit options, and the rule that keeps
an exposed server from running open.

On a loopback address (127.0.0.0/8, ::1, localhost, a unix socket) the
server may run without TLS or identity, as a developer's does. On any other
address it starts only with TLS and some source of caller identity, or when
told `--insecure`: otherwise anyone who reaches the port could read every
team's threads, and bearer tokens would cross the network in clear text.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cairn_server.auth.access_file import AccessFile
from cairn_server.auth.jwt_tokens import load_jwks_file
from cairn_server.auth.rate_limit import RateLimiter

MIN_SECRET_BYTES = 32
"""Shortest JWT secret accepted: HS256's key must be as long as its hash (RFC 7518)."""


@dataclass(slots=True)
class AuthConfig:
    """Who may call and how they prove it; the defaults are an open server."""

    tls_cert: str | None = None
    """PEM certificate (chain) the server presents."""
    tls_key: str | None = None
    """PEM private key of `tls_cert`."""
    tls_client_ca: str | None = None
    """PEM CA(s) that sign client certificates: set, every client needs one (mTLS)."""
    tls_ca: str | None = None
    """PEM CA(s) this replica trusts when it connects to another (default: tls_client_ca)."""
    jwt_secret: bytes | None = field(default=None, repr=False)
    """Shared secret for HS256/384/512 tokens."""
    jwt_jwks: str | None = None
    """JWKS file path or http(s) URL with the public keys of RS/PS/ES/EdDSA tokens."""
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_roles_claim: str = "permissions"
    """The claim holding a token's grants (a list, or one space-separated string)."""
    jwt_leeway: float = 0.0
    """Seconds of clock skew allowed on exp and nbf."""
    access_file: str | None = None
    """JSON file of API key hashes and certificate subjects with their grants."""
    relay_credential: str | None = field(default=None, repr=False)
    """Bearer credential (JWT or API key) this replica sends on its relay streams."""
    insecure: bool = False
    """Serve a non-loopback address without TLS or identity anyway."""
    rate_limit: float | None = None
    """Calls per second each caller may make (None: no limit)."""
    rate_burst: int | None = None
    """Calls a caller may make at once after a pause (default: one second's worth)."""
    namespace_rate_limit: float | None = None
    """Admitted calls per second in one namespace, from all its callers together
    (None: no limit); bursts of one second's worth."""
    max_runs_per_namespace: int | None = None
    max_workers_per_namespace: int | None = None

    def relay_metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata this replica sends on its relay streams."""
        if not self.relay_credential:
            return ()
        return (("authorization", f"Bearer {self.relay_credential}"),)

    @property
    def burst(self) -> int:
        """`rate_burst`, or one second of calls (at least one)."""
        if self.rate_burst is not None:
            return self.rate_burst
        return max(1, math.ceil(self.rate_limit or 1))


def rate_limiter(
    config: AuthConfig, *, clock: Callable[[], float] = time.monotonic
) -> RateLimiter | None:
    """The per-caller rate limiter `config` asks for; None without --rate-limit."""
    if config.rate_limit is None:
        return None
    return RateLimiter(config.rate_limit, config.burst, clock=clock)


def namespace_rate_limiter(
    config: AuthConfig, *, clock: Callable[[], float] = time.monotonic
) -> RateLimiter | None:
    """The per-namespace rate limiter `config` asks for; None without
    --namespace-rate-limit."""
    rate = config.namespace_rate_limit
    if rate is None:
        return None
    return RateLimiter(rate, max(1, math.ceil(rate)), clock=clock)


def tls_configured(config: AuthConfig) -> bool:
    return config.tls_cert is not None and config.tls_key is not None


def identity_configured(config: AuthConfig) -> bool:
    """Whether callers must prove who they are (otherwise all are anonymous)."""
    return bool(
        config.jwt_secret is not None
        or config.jwt_jwks
        or config.access_file
        or config.tls_client_ca
    )


def jwks_is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def exposure_error(address: str, config: AuthConfig) -> str | None:
    """Why the server must not listen on `address` with `config`, in one line;
    None when it may (a loopback address, or TLS with identity, or --insecure)."""
    if config.insecure or _loopback(address):
        return None
    tls, identity = tls_configured(config), identity_configured(config)
    if tls and identity:
        return None
    missing = {
        (False, False): "without TLS and without caller identity",
        (True, False): "without caller identity",
        (False, True): "without TLS (credentials would cross the network in clear text)",
    }[(tls, identity)]
    wanted = []
    if not tls:
        wanted.append("--tls-cert and --tls-key")
    if not identity:
        wanted.append("--jwt-secret-file, --jwt-jwks, --access-file or --tls-client-ca")
    return (
        f"refusing to serve {address}, which is not a loopback address, {missing}: give"
        f" {' with '.join(wanted)}, or --insecure to serve it anyway"
    )


def _loopback(address: str) -> bool:
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host = address.rpartition(":")[0] if ":" in address else address
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '', a host name, or not an address: possibly reachable from outside


def validate(config: AuthConfig) -> None:
    """Check the configuration before serving; ValueError with one line saying what is wrong."""
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together: give both or neither")
    if config.tls_cert is not None and config.tls_key is not None:
        _check_key_pair(config.tls_cert, config.tls_key)
    for flag, path in (("--tls-client-ca", config.tls_client_ca), ("--tls-ca", config.tls_ca)):
        if path is None:
            continue
        if config.tls_cert is None:
            raise ValueError(f"{flag} needs --tls-cert and --tls-key (it is about TLS)")
        _certificates(path, flag)
    if config.jwt_secret is not None and len(config.jwt_secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the JWT secret is {len(config.jwt_secret)} bytes; use at least"
            f" {MIN_SECRET_BYTES} random bytes (HS384/HS512 tokens need 48/64)"
        )
    if config.jwt_jwks and not jwks_is_url(config.jwt_jwks):
        load_jwks_file(config.jwt_jwks)
    jwt = config.jwt_secret is not None or bool(config.jwt_jwks)
    for flag, value in (
        ("--jwt-issuer", config.jwt_issuer),
        ("--jwt-audience", config.jwt_audience),
    ):
        if value is not None and not jwt:
            raise ValueError(f"{flag} needs --jwt-secret-file (or CAIRN_JWT_SECRET) or --jwt-jwks")
    if not config.jwt_roles_claim:
        raise ValueError("--jwt-roles-claim must not be empty")
    if not config.jwt_leeway >= 0 or math.isinf(config.jwt_leeway):
        raise ValueError(f"--jwt-leeway must be a number of seconds >= 0, got {config.jwt_leeway}")
    if config.access_file is not None:
        AccessFile.load(config.access_file)
    if config.rate_limit is not None and not (0 < config.rate_limit < math.inf):
        raise ValueError(
            f"--rate-limit must be a positive number of calls per second, got {config.rate_limit}"
        )
    for flag, count in (
        ("--rate-burst", config.rate_burst),
        ("--max-runs-per-namespace", config.max_runs_per_namespace),
        ("--max-workers-per-namespace", config.max_workers_per_namespace),
    ):
        if count is not None and count < 1:
            raise ValueError(f"{flag} must be at least 1, got {count}")
    rate = config.namespace_rate_limit
    if rate is not None and not (0 < rate < math.inf):
        raise ValueError(
            f"--namespace-rate-limit must be a positive number of calls per second, got {rate}"
        )
    if config.rate_burst is not None and config.rate_limit is None:
        raise ValueError("--rate-burst needs --rate-limit")


def _read_file(path: str, flag: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise ValueError(f"{flag} {path}: cannot read it: {error.strerror}") from None


def _certificates(path: str, flag: str) -> list[x509.Certificate]:
    data = _read_file(path, flag)
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(f"{flag} {path}: not a PEM certificate") from None


def _check_key_pair(cert_path: str, key_path: str) -> None:
    certificate = _certificates(cert_path, "--tls-cert")[0]
    data = _read_file(key_path, "--tls-key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ValueError(
            f"--tls-key {key_path}: the key is encrypted; give it unencrypted"
        ) from None
    except ValueError:
        raise ValueError(f"--tls-key {key_path}: not a PEM private key") from None
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*raw) != certificate.public_key().public_bytes(*raw):
        raise ValueError(f"--tls-key {key_path} is not the key of --tls-cert {cert_path}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the identity, TLS and limit options to `cairn serve`."""
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--tls-cert", metavar="PEM", help="the server's certificate (chain)")
    tls.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    tls.add_argument(
        "--tls-client-ca",
        metavar="PEM",
        help="require client certificates signed by this CA (mTLS); the access file maps"
        " their subjects to grants",
    )
    tls.add_argument(
        "--tls-ca",
        metavar="PEM",
        help="CA this replica trusts when relaying to other replicas (default --tls-client-ca,"
        " else the system roots)",
    )
    identity = parser.add_argument_group("caller identity")
    identity.add_argument(
        "--jwt-secret-file",
        metavar="FILE",
        help="shared secret of HS256/384/512 bearer JWTs (or the CAIRN_JWT_SECRET variable)",
    )
    identity.add_argument(
        "--jwt-jwks",
        metavar="FILE_OR_URL",
        help="JWKS file or http(s) URL with the public keys of bearer JWTs",
    )
    identity.add_argument("--jwt-issuer", help="accept only JWTs with this 'iss'")
    identity.add_argument("--jwt-audience", help="accept only JWTs with this 'aud'")
    identity.add_argument(
        "--jwt-roles-claim",
        default="permissions",
        metavar="CLAIM",
        help="the JWT claim with the caller's grants (default: permissions)",
    )
    identity.add_argument(
        "--jwt-leeway",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="clock skew allowed on a JWT's exp and nbf (default 0)",
    )
    identity.add_argument(
        "--access-file",
        metavar="JSON",
        help="API key hashes and certificate subjects with their grants (see `cairn keys create`)",
    )
    identity.add_argument(
        "--relay-credential-file",
        metavar="FILE",
        help="bearer credential this replica sends on relay streams to other replicas (or"
        " the CAIRN_RELAY_CREDENTIAL variable); it needs the *:replica grant",
    )
    identity.add_argument(
        "--insecure",
        action="store_true",
        help="serve a non-loopback address without TLS or caller identity",
    )
    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "--rate-limit",
        type=float,
        metavar="PER_SECOND",
        help="calls per second each caller may make (default: no limit)",
    )
    limits.add_argument(
        "--rate-burst",
        type=int,
        metavar="CALLS",
        help="calls a caller may make at once after a pause (default: one second's worth)",
    )
    limits.add_argument(
        "--namespace-rate-limit",
        type=float,
        metavar="PER_SECOND",
        help="calls per second admitted in one namespace, all its callers together"
        " (default: no limit)",
    )
    limits.add_argument("--max-runs-per-namespace", type=int, metavar="N")
    limits.add_argument("--max-workers-per-namespace", type=int, metavar="N")


def from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> AuthConfig:
    """The AuthConfig of parsed `cairn serve` arguments, checked (ValueError
    with one line saying what is wrong). Secrets are read from their files, or
    from CAIRN_JWT_SECRET and CAIRN_RELAY_CREDENTIAL."""
    environ = os.environ if environ is None else environ
    secret = _secret(args.jwt_secret_file, "--jwt-secret-file", environ.get("CAIRN_JWT_SECRET"))
    relay = _secret(
        args.relay_credential_file, "--relay-credential-file", environ.get("CAIRN_RELAY_CREDENTIAL")
    )
    try:
        relay_text = relay.decode("utf-8") if relay is not None else None
    except UnicodeDecodeError:
        raise ValueError("the relay credential is not UTF-8 text") from None
    config = AuthConfig(
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        tls_ca=args.tls_ca,
        jwt_secret=secret,
        jwt_jwks=args.jwt_jwks,
        jwt_issuer=args.jwt_issuer,
        jwt_audience=args.jwt_audience,
        jwt_roles_claim=args.jwt_roles_claim,
        jwt_leeway=args.jwt_leeway,
        access_file=args.access_file,
        relay_credential=relay_text,
        insecure=args.insecure,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        namespace_rate_limit=args.namespace_rate_limit,
        max_runs_per_namespace=args.max_runs_per_namespace,
        max_workers_per_namespace=args.max_workers_per_namespace,
    )
    validate(config)
    return config


def _secret(path: str | None, flag: str, from_env: str | None) -> bytes | None:
    """A secret from its file (surrounding whitespace, such as the final
    newline an editor adds, is not part of it) or from the environment."""
    if path is not None:
        data = _read_file(path, flag).strip()
        if not data:
            raise ValueError(f"{flag} {path} is empty")
        return data
    if from_env:
        return from_env.strip().encode("utf-8")
    return None
