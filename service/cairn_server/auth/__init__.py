"""Identity, namespaces and roles (DESIGN.md section 8.1-8.3).

A call proves who it comes from with a bearer JWT, an API key from the
access file or a client certificate; `Authenticator` turns that into a
`Principal` with grants (a role per namespace). `AuthInterceptor` checks
every call's role in its namespace before a servicer runs, and the servicer
reads the caller with `current()`. `options` holds `cairn serve`'s flags and
the rule that an exposed server needs TLS and identity; `tls` the
credentials; `keys` the `cairn keys create` command.

    config = from_args(args)                        # ValueError: one line saying why
    if (problem := exposure_error(address, config)) is not None:
        raise SystemExit(problem)
    interceptor = AuthInterceptor(
        Authenticator.from_config(config), rate_limiter=rate_limiter(config)
    )
"""

from __future__ import annotations

from cairn_server.auth.access_file import AccessFile, hash_api_key
from cairn_server.auth.authenticator import Authenticator
from cairn_server.auth.caller import OPEN_CALLER, Caller, acting_as, current
from cairn_server.auth.interceptor import (
    DESTRUCTIVE,
    METHOD_ROLES,
    NAMESPACE_METADATA,
    AuthInterceptor,
    Need,
    namespace_of,
)
from cairn_server.auth.jwt_tokens import JwtVerifier
from cairn_server.auth.keys import add_keys_parser, keys_command, new_api_key, run_keys
from cairn_server.auth.options import (
    AuthConfig,
    add_arguments,
    exposure_error,
    from_args,
    identity_configured,
    namespace_rate_limiter,
    rate_limiter,
    tls_configured,
    validate,
)
from cairn_server.auth.principal import (
    ANONYMOUS,
    EVERY_NAMESPACE,
    Grant,
    Principal,
    Role,
    parse_grant,
)
from cairn_server.auth.rate_limit import RateLimiter
from cairn_server.auth.tls import relay_channel_credentials, server_credentials, subject_of
from cairn_server.namespaces import DEFAULT as DEFAULT_NAMESPACE

__all__ = [
    "ANONYMOUS",
    "DEFAULT_NAMESPACE",
    "DESTRUCTIVE",
    "EVERY_NAMESPACE",
    "METHOD_ROLES",
    "NAMESPACE_METADATA",
    "OPEN_CALLER",
    "AccessFile",
    "AuthConfig",
    "AuthInterceptor",
    "Authenticator",
    "Caller",
    "Grant",
    "JwtVerifier",
    "Need",
    "Principal",
    "RateLimiter",
    "Role",
    "acting_as",
    "add_arguments",
    "add_keys_parser",
    "current",
    "exposure_error",
    "from_args",
    "hash_api_key",
    "identity_configured",
    "keys_command",
    "namespace_of",
    "namespace_rate_limiter",
    "new_api_key",
    "parse_grant",
    "rate_limiter",
    "relay_channel_credentials",
    "run_keys",
    "server_credentials",
    "subject_of",
    "tls_configured",
    "validate",
]
