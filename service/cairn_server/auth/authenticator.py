"""Who is calling: a call's metadata and TLS context become a Principal.

In order: an `authorization: Bearer <credential>` (a JWT, or an API key
from the access file, told apart by the `cairn_` prefix); else the subject
of the client certificate the TLS handshake verified, mapped to grants by
the access file; else, on a server with no identity source at all, the
anonymous admin. Anything else is UNAUTHENTICATED, with a message that says
what to send and never repeats the credential.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cairn_server.auth.access_file import AccessFile
from cairn_server.auth.jwt_tokens import JwtVerifier, is_jwt, unauthenticated
from cairn_server.auth.keys import API_KEY_PREFIX
from cairn_server.auth.options import AuthConfig, jwks_is_url, validate
from cairn_server.auth.principal import ANONYMOUS, Principal
from cairn_server.auth.tls import subject_of

log = logging.getLogger(__name__)

_HOW = (
    "send 'authorization: Bearer <JWT or API key>' metadata"
    " (the SDKs' token= or api_key=, or CAIRN_TOKEN / CAIRN_API_KEY)"
)


class Authenticator:
    """Authenticates calls with the identity sources of an AuthConfig."""

    def __init__(
        self,
        *,
        jwt: JwtVerifier | None = None,
        access: AccessFile | None = None,
        client_certificates: bool = False,
    ) -> None:
        self._jwt = jwt
        self._access = access
        self._client_certificates = client_certificates

    @classmethod
    def from_config(cls, config: AuthConfig) -> Authenticator:
        """Check `config` (ValueError saying what is wrong) and load its keys and access file."""
        validate(config)
        jwt = None
        if config.jwt_secret is not None or config.jwt_jwks:
            jwks = config.jwt_jwks
            jwt = JwtVerifier(
                secret=config.jwt_secret,
                jwks_file=jwks if jwks and not jwks_is_url(jwks) else None,
                jwks_url=jwks if jwks and jwks_is_url(jwks) else None,
                issuer=config.jwt_issuer,
                audience=config.jwt_audience,
                roles_claim=config.jwt_roles_claim,
                leeway=config.jwt_leeway,
            )
        access = AccessFile.load(config.access_file) if config.access_file else None
        if access is not None and access.certificates and not config.tls_client_ca:
            log.warning(
                "the access file lists certificates, but without --tls-client-ca no client"
                " presents one: those entries admit nobody"
            )
        return cls(jwt=jwt, access=access, client_certificates=bool(config.tls_client_ca))

    @property
    def enabled(self) -> bool:
        """Whether callers must prove who they are; when not, every caller is ANONYMOUS."""
        return self._jwt is not None or self._access is not None or self._client_certificates

    async def authenticate(
        self,
        metadata: Iterable[tuple[str, Any]] | None,
        auth_context: Mapping[str, Sequence[bytes]] | None,
    ) -> Principal:
        """The caller of a call, or raise the UNAUTHENTICATED ServiceError."""
        if not self.enabled:
            return ANONYMOUS  # an open server ignores credentials it cannot check
        credential = bearer_credential(metadata)
        if credential is not None:
            return await self._bearer(credential)
        subject = subject_of(auth_context) if self._client_certificates else None
        if subject is not None:
            principal = self._access.principal_for_subject(subject) if self._access else None
            if principal is None:
                raise unauthenticated(
                    f"the client certificate's subject {subject!r} is not in the server's"
                    f" access file; {_HOW}"
                )
            return principal
        raise unauthenticated(f"the call carries no credential: {_HOW}")

    async def _bearer(self, credential: str) -> Principal:
        if credential.startswith(API_KEY_PREFIX):
            if self._access is None or not self._access.api_keys:
                raise unauthenticated(
                    "this server accepts no API keys (its access file lists none)"
                )
            principal = self._access.principal_for_key(credential)
            if principal is None:
                raise unauthenticated("unknown API key (not in the server's access file)")
            return principal
        if is_jwt(credential):
            if self._jwt is None:
                raise unauthenticated("this server accepts no JWTs (it has no JWT keys)")
            return await self._jwt.verify(credential)
        raise unauthenticated(
            "the bearer credential is neither a JWT nor a Cairn API key (cairn_...)"
        )


def bearer_credential(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The credential of the call's `authorization: Bearer ...` metadata, if any."""
    values = [v for k, v in metadata or () if k == "authorization"]
    if not values:
        return None
    if len(values) > 1:
        raise unauthenticated("the call carries more than one 'authorization' metadata")
    value = values[0]
    if not isinstance(value, str):
        raise unauthenticated("the 'authorization' metadata is not text")
    scheme, _, credential = value.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise unauthenticated("the 'authorization' metadata must be 'Bearer <credential>'")
    return credential
