"""Bearer JWTs: verified with PyJWT against the keys the operator gives.

Keys come from a shared secret (HS256/384/512), a JWKS file or a JWKS URL
(an identity provider's published public keys). The algorithms a token may
use follow from the key that verifies it, never from the token alone: a
token signed `none`, or with HMAC using a public key as the secret, is
refused. `exp` is required (a token that never expires is a password that
cannot be revoked); `nbf`, the issuer and the audience are checked when
present or configured.

The caller is `jwt:<sub>`; its grants are the strings in a claim
(`permissions` unless configured), as Temporal reads them.

A JWKS URL is fetched off the event loop, kept for `JWKS_LIFESPAN` seconds,
and fetched again early when a token names a key id it does not hold (a key
rotation), at most once per `JWKS_COOLDOWN` seconds, so tokens with made-up
key ids cannot make the server hammer the identity provider.

Every failure is UNAUTHENTICATED with a message that says what was wrong,
never the token.

A token that verified is remembered (by its SHA-256) until its expiry, and
for at most `VERIFIED_FOR` seconds so that a key removed from the JWKS stops
admitting its tokens soon: a client sends the same token with every call,
and checking its signature each time cost about 0.2 ms per call
(bench/auth.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
import jwt.types

from cairn_server.auth.principal import Grant, Principal, parse_grant
from cairn_server.errors import ServiceError, error_for

log = logging.getLogger(__name__)

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
JWKS_LIFESPAN = 300.0
"""Seconds a fetched JWKS is used before it is fetched again."""
JWKS_COOLDOWN = 30.0
"""Least seconds between two fetches of a JWKS URL (failed fetches included)."""
JWKS_TIMEOUT = 10.0
"""Seconds a JWKS fetch may take."""
VERIFIED_FOR = 60.0
"""Most seconds a verified token is admitted without checking it again."""
VERIFIED_TOKENS = 10_000
"""Verified tokens remembered at most (the least recently used go first)."""

_ASYMMETRIC_ALGORITHMS = {
    "RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    "OKP": ("EdDSA",),
}
"""The algorithms a key of each type may verify, when the JWK names none.
EC keys take the one algorithm of their curve (PyJWK derives it)."""


def unauthenticated(message: str) -> ServiceError:
    return error_for("UNAUTHENTICATED", message)


def is_jwt(credential: str) -> bool:
    """Whether a bearer credential has a JWT's shape (three dot-separated parts)."""
    return credential.count(".") == 2


@dataclass(frozen=True, slots=True)
class _Key:
    key: Any
    algorithms: tuple[str, ...]


def _keys_of(jwks: dict[str, Any]) -> dict[str | None, _Key]:
    """The public signing keys of a JWKS document, by key id, each with the
    algorithms it verifies. Symmetric (`oct`) keys are skipped: in a published
    set they would be a secret anyone can read. Keys PyJWT cannot use too."""
    found: dict[str | None, _Key] = {}
    entries = jwks.get("keys")
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict) or entry.get("kty") == "oct":
            continue
        if entry.get("use") not in (None, "sig"):
            continue
        try:
            jwk = jwt.PyJWK.from_dict(entry)
        except jwt.PyJWTError:
            continue
        named = entry.get("alg")
        if isinstance(named, str) and named:
            algorithms: tuple[str, ...] = (named,)
        else:
            algorithms = _ASYMMETRIC_ALGORITHMS.get(jwk.key_type or "", (jwk.algorithm_name,))
        if any(a.upper().startswith("HS") or a.lower() == "none" for a in algorithms):
            continue
        kid = entry.get("kid")
        found[kid if isinstance(kid, str) else None] = _Key(jwk.key, algorithms)
    return found


def _pick(keys: dict[str | None, _Key], kid: str | None) -> _Key | None:
    if kid is not None:
        return keys.get(kid)
    # A token without a key id is accepted only when there is no choice.
    return next(iter(keys.values())) if len(keys) == 1 else None


def load_jwks_file(path: str) -> dict[str | None, _Key]:
    """The signing keys of a JWKS file; ValueError naming the file otherwise."""
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except OSError as error:
        raise ValueError(f"cannot read the JWKS file {path}: {error.strerror}") from None
    except ValueError as error:
        raise ValueError(f"the JWKS file {path} is not JSON: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError(f'the JWKS file {path} is not a JSON object with a "keys" list')
    keys = _keys_of(data)
    if not keys:
        raise ValueError(f"the JWKS file {path} holds no public signing key (RSA, EC or OKP)")
    return keys


class JwksUrl:
    """The keys published at a JWKS URL, fetched with PyJWKClient in a thread."""

    def __init__(
        self,
        url: str,
        *,
        lifespan: float = JWKS_LIFESPAN,
        cooldown: float = JWKS_COOLDOWN,
        timeout: float = JWKS_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            # The client's own cache is off: the keys are kept here, on the
            # event loop, so a known key costs no thread hop.
            self._client = jwt.PyJWKClient(url, cache_jwk_set=False, timeout=timeout)
        except jwt.PyJWTError as error:
            raise ValueError(f"bad JWKS URL {url}: {error}") from None
        self.url = url
        self._lifespan = lifespan
        self._cooldown = cooldown
        self._clock = clock
        self._keys: dict[str | None, _Key] = {}
        self._fetched_at: float | None = None
        self._tried_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> _Key | None:
        """The key for `kid` (None: the only key), fetching the set when it
        is stale or lacks `kid`, at most once per cooldown."""
        found = _pick(self._keys, kid)
        if found is not None and not self._stale():
            return found
        async with self._lock:  # concurrent calls share one fetch
            found = _pick(self._keys, kid)
            if found is not None and not self._stale():
                return found
            if self._tried_at is None or self._clock() - self._tried_at >= self._cooldown:
                await self._fetch()
            if self._fetched_at is None:
                raise unauthenticated(
                    "the server cannot fetch the keys to verify the token (its JWKS URL does"
                    " not answer); try again later"
                )
            return _pick(self._keys, kid)

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._lifespan

    async def _fetch(self) -> None:
        self._tried_at = self._clock()
        try:
            data = await asyncio.to_thread(self._client.fetch_data)
        except (jwt.PyJWTError, ValueError) as error:  # unreachable, or not a JSON object
            # Keys fetched before stay in use: a brief outage of the identity
            # provider does not lock every caller out.
            log.warning("cannot fetch the JWKS at %s: %s", self.url, error)
            return
        keys = _keys_of(data)
        if not keys:
            log.warning("the JWKS at %s holds no public signing key", self.url)
        self._keys = keys
        self._fetched_at = self._clock()


class JwtVerifier:
    """Turns a bearer JWT into a Principal, or raises UNAUTHENTICATED."""

    def __init__(
        self,
        *,
        secret: bytes | None = None,
        jwks_file: str | None = None,
        jwks_url: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        roles_claim: str = "permissions",
        leeway: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if secret is None and jwks_file is None and jwks_url is None:
            raise ValueError("a JWT verifier needs a secret, a JWKS file or a JWKS URL")
        if jwks_file is not None and jwks_url is not None:
            raise ValueError("give a JWKS file or a JWKS URL, not both")
        self._secret = secret
        self._file_keys = load_jwks_file(jwks_file) if jwks_file is not None else None
        self._url = JwksUrl(jwks_url, clock=clock) if jwks_url is not None else None
        self._issuer = issuer
        self._audience = audience
        self._roles_claim = roles_claim
        self._leeway = leeway
        self._clock = clock
        self._verified: OrderedDict[bytes, tuple[Principal, float, float]] = OrderedDict()
        """Token digest -> (principal, its exp plus leeway, when to check it again)."""

    async def verify(self, token: str) -> Principal:
        digest = hashlib.sha256(token.encode()).digest()
        known = self._verified.pop(digest, None)
        if known is not None and time.time() < known[1] and self._clock() < known[2]:
            self._verified[digest] = known
            return known[0]
        principal, expires = await self._verify(token)
        self._verified[digest] = (principal, expires + self._leeway, self._clock() + VERIFIED_FOR)
        if len(self._verified) > VERIFIED_TOKENS:
            self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise unauthenticated("the bearer token is not a well-formed JWT") from None
        algorithm = header.get("alg")
        kid = header.get("kid")
        if not isinstance(algorithm, str) or algorithm.lower() == "none":
            raise unauthenticated("the token is not signed (alg 'none' is never accepted)")
        if kid is not None and not isinstance(kid, str):
            raise unauthenticated("the token's 'kid' header is not a string")
        key = await self._key_for(algorithm, kid)
        if algorithm not in key.algorithms:
            raise unauthenticated(
                f"the token is signed with {algorithm}, which the server's key for it does"
                f" not accept ({', '.join(key.algorithms)})"
            )
        claims = self._decode(token, key)
        return Principal(f"jwt:{claims['sub']}", self._grants(claims)), float(claims["exp"])

    async def _key_for(self, algorithm: str, kid: str | None) -> _Key:
        if algorithm in HMAC_ALGORITHMS:
            if self._secret is None:
                raise unauthenticated(
                    f"the token is signed with {algorithm} (a shared secret), but this server"
                    " verifies tokens with public keys only"
                )
            return _Key(self._secret, HMAC_ALGORITHMS)
        if self._file_keys is None and self._url is None:
            raise unauthenticated(
                f"the token is signed with {algorithm}, but this server verifies tokens with"
                " a shared secret only (HS256, HS384, HS512)"
            )
        if self._file_keys is not None:
            found = _pick(self._file_keys, kid)
        else:
            assert self._url is not None
            found = await self._url.key(kid)
        if found is None:
            if kid is None:
                raise unauthenticated(
                    "the token has no 'kid' header and the server holds several keys"
                )
            raise unauthenticated(f"the token's key id {kid[:64]!r} is not one the server knows")
        return found

    def _decode(self, token: str, key: _Key) -> dict[str, Any]:
        options: jwt.types.Options = {
            "require": ["exp", "sub"],
            "verify_aud": self._audience is not None,
            "enforce_minimum_key_length": True,
        }
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=list(key.algorithms),
                options=options,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
            )
        except jwt.PyJWTError as error:
            raise unauthenticated(_reason(error)) from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise unauthenticated("the token's 'sub' claim is not a non-empty string")
        return claims

    def _grants(self, claims: dict[str, Any]) -> tuple[Grant, ...]:
        value = claims.get(self._roles_claim)
        if value is None:
            return ()
        if isinstance(value, str):
            texts: Sequence[Any] = value.split()
        elif isinstance(value, list):
            texts = value
        else:
            raise unauthenticated(
                f"the token's {self._roles_claim!r} claim is not a list of grants"
            )
        try:
            return tuple(parse_grant(text) for text in texts)
        except ValueError as error:
            raise unauthenticated(f"the token's {self._roles_claim!r} claim: {error}") from None


def _reason(error: jwt.PyJWTError) -> str:
    """What was wrong with a token, in words of ours (PyJWT's may quote it)."""
    if isinstance(error, jwt.ExpiredSignatureError):
        return "the token has expired"
    if isinstance(error, jwt.ImmatureSignatureError):
        return "the token is not valid yet (its 'nbf' is in the future)"
    if isinstance(error, jwt.InvalidAudienceError):
        return "the token is not meant for this server (wrong audience)"
    if isinstance(error, jwt.InvalidIssuerError):
        return "the token was issued by an issuer this server does not trust (wrong issuer)"
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"the token has no {error.claim!r} claim, which this server requires"
    if isinstance(error, jwt.InvalidSignatureError):
        return "the token's signature does not verify (bad signature)"
    if isinstance(error, jwt.InvalidAlgorithmError):
        return "the token's algorithm is not accepted"
    if isinstance(error, jwt.InvalidKeyError):
        return "the server's key cannot verify this token (key type or length)"
    if isinstance(error, jwt.DecodeError):
        return "the bearer token is not a well-formed JWT"
    return f"the token is invalid ({type(error).__name__})"
