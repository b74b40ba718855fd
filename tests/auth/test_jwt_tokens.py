"""Bearer JWTs: what verifies, and what each refusal says (never the token)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import pathlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cairn_server.auth import JwtVerifier, Role, parse_grant
from cairn_server.errors import ServiceError
from tests.auth.conftest import SECRET, hs_token, jwks_of, rs_token


async def refused(verifier: JwtVerifier, token: str) -> str:
    """The UNAUTHENTICATED message `token` gets; it must not quote the token."""
    with pytest.raises(ServiceError) as caught:
        await verifier.verify(token)
    error = caught.value
    assert (error.code, error.reason) == ("UNAUTHENTICATED", "UNAUTHENTICATED")
    for part in token.split("."):
        if len(part) > 8:
            assert part not in error.message
    return error.message


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token PyJWT would refuse to make: `alg: none`, or HMAC keyed with a public key."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if secret is None:
        return signing_input + "."
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


# --- shared secret ---------------------------------------------------------------------------


async def test_a_good_token_names_its_subject_and_carries_its_grants() -> None:
    verifier = JwtVerifier(secret=SECRET)
    caller = await verifier.verify(hs_token("alice", permissions=["team-a:writer", "*:reader"]))
    assert caller.name == "jwt:alice"
    assert caller.grants == (parse_grant("team-a:writer"), parse_grant("*:reader"))
    assert caller.allows("team-a", Role.WRITER)


async def test_grants_may_be_one_space_separated_string_in_a_configured_claim() -> None:
    verifier = JwtVerifier(secret=SECRET, roles_claim="cairn/roles")
    token = hs_token("bob", **{"cairn/roles": "team-a:reader team-b:admin"})
    caller = await verifier.verify(token)
    assert caller.grants == (parse_grant("team-a:reader"), parse_grant("team-b:admin"))
    assert (await verifier.verify(hs_token("carol"))).grants == ()


async def test_expired_and_not_yet_valid_tokens_are_refused() -> None:
    verifier = JwtVerifier(secret=SECRET)
    assert "expired" in await refused(verifier, hs_token(lifetime=-60))
    later = int(time.time()) + 600
    assert "not valid yet" in await refused(verifier, hs_token(nbf=later))
    lenient = JwtVerifier(secret=SECRET, leeway=120)
    assert (await lenient.verify(hs_token(lifetime=-60))).name == "jwt:alice"


async def test_exp_and_sub_are_required() -> None:
    verifier = JwtVerifier(secret=SECRET)
    forever = jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256")
    assert "'exp'" in await refused(verifier, forever)
    anonymous = jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    assert "'sub'" in await refused(verifier, anonymous)


async def test_issuer_and_audience_are_checked_when_configured() -> None:
    verifier = JwtVerifier(secret=SECRET, issuer="https://idp.example", audience="cairn")
    good = hs_token(iss="https://idp.example", aud="cairn")
    assert (await verifier.verify(good)).name == "jwt:alice"
    assert "wrong issuer" in await refused(verifier, hs_token(iss="https://evil", aud="cairn"))
    assert "wrong audience" in await refused(
        verifier, hs_token(iss="https://idp.example", aud="other")
    )
    assert "'aud'" in await refused(verifier, hs_token(iss="https://idp.example"))
    assert "'iss'" in await refused(verifier, hs_token(aud="cairn"))
    # Without a configured audience, a token's audience is not held against it.
    assert (await JwtVerifier(secret=SECRET).verify(hs_token(aud="any"))).name == "jwt:alice"


async def test_a_token_signed_with_another_secret_has_a_bad_signature() -> None:
    verifier = JwtVerifier(secret=SECRET)
    assert "bad signature" in await refused(verifier, hs_token(secret=b"x" * 32))


async def test_unsigned_tokens_are_never_accepted() -> None:
    verifier = JwtVerifier(secret=SECRET)
    token = hand_made({"alg": "none", "typ": "JWT"}, {"sub": "eve", "exp": 2**40}, None)
    assert "alg 'none'" in await refused(verifier, token)
    token = hand_made({"alg": "None"}, {"sub": "eve", "exp": 2**40}, None)
    assert "alg 'none'" in await refused(verifier, token)


async def test_malformed_tokens_and_grants() -> None:
    verifier = JwtVerifier(secret=SECRET)
    assert "not a well-formed JWT" in await refused(verifier, "abc.def.ghi")
    message = await refused(verifier, hs_token(permissions=["team-a:owner"]))
    assert "'permissions' claim" in message
    assert "unknown role 'owner'" in message
    assert "not a list" in await refused(verifier, hs_token(permissions={"a": 1}))


# --- public keys ---------------------------------------------------------------------------


@pytest.fixture
def jwks_file(tmp_path: pathlib.Path, rsa_key: rsa.RSAPrivateKey) -> str:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks_of(rsa_key, "k1")))
    return str(path)


async def test_rs256_tokens_verify_against_a_jwks_file_by_kid(
    jwks_file: str, rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = JwtVerifier(jwks_file=jwks_file)
    caller = await verifier.verify(rs_token(rsa_key, "k1", permissions=["default:reader"]))
    assert caller.name == "jwt:alice"
    assert caller.allows("default", Role.READER)
    # One key in the file: a token without a kid can only mean that one.
    assert (await verifier.verify(rs_token(rsa_key, None))).name == "jwt:alice"
    assert "key id 'k2'" in await refused(verifier, rs_token(rsa_key, "k2"))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert "bad signature" in await refused(verifier, rs_token(other, "k1"))


async def test_an_hmac_token_keyed_with_the_public_key_is_refused(
    jwks_file: str, rsa_key: rsa.RSAPrivateKey
) -> None:
    """The classic confusion attack: HS256 with the (public) PEM as the secret."""
    verifier = JwtVerifier(jwks_file=jwks_file)
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = hand_made(
        {"alg": "HS256", "kid": "k1"}, {"sub": "eve", "exp": int(time.time()) + 60}, public_pem
    )
    assert "public keys only" in await refused(verifier, token)
    assert "public keys only" in await refused(verifier, hs_token())


async def test_a_secret_only_server_refuses_rs256_tokens(rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = JwtVerifier(secret=SECRET)
    assert "shared secret only" in await refused(verifier, rs_token(rsa_key, "k1"))


async def test_a_jwk_that_names_its_algorithm_accepts_only_that_one(
    tmp_path: pathlib.Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks = jwks_of(rsa_key, "k1")
    jwks["keys"][0]["alg"] = "RS512"
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    verifier = JwtVerifier(jwks_file=str(path))
    assert "RS256" in await refused(verifier, rs_token(rsa_key, "k1"))
    token = jwt.encode(
        {"sub": "a", "exp": int(time.time()) + 60},
        rsa_key,
        algorithm="RS512",
        headers={"kid": "k1"},
    )
    assert (await verifier.verify(token)).name == "jwt:a"


def test_a_jwks_file_without_public_signing_keys_is_a_config_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{"kty": "oct", "k": b64(SECRET), "kid": "s"}]}))
    with pytest.raises(ValueError, match="no public signing key"):
        JwtVerifier(jwks_file=str(path))
    path.write_text("{")
    with pytest.raises(ValueError, match="not JSON"):
        JwtVerifier(jwks_file=str(path))
    with pytest.raises(ValueError, match="cannot read"):
        JwtVerifier(jwks_file=str(tmp_path / "missing.json"))


# --- JWKS URL ------------------------------------------------------------------------------


@dataclass
class JwksServer:
    """A JWKS endpoint on 127.0.0.1, in a thread; `jwks` is what it serves."""

    url: str
    jwks: dict[str, Any]
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def jwks_server(rsa_key: rsa.RSAPrivateKey) -> Iterator[JwksServer]:
    state = JwksServer("", jwks_of(rsa_key, "k1"))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.requests += 1
                body = json.dumps(state.jwks).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_jwks_url_is_fetched_once_and_kept(
    jwks_server: JwksServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    clock = Clock()
    verifier = JwtVerifier(jwks_url=jwks_server.url, clock=clock)
    for _ in range(3):
        assert (await verifier.verify(rs_token(rsa_key, "k1"))).name == "jwt:alice"
    assert jwks_server.requests == 1
    clock.now += 301  # past the lifespan: fetched again
    await verifier.verify(rs_token(rsa_key, "k1"))
    assert jwks_server.requests == 2


async def test_an_unknown_kid_refreshes_the_jwks_at_most_once_per_cooldown(
    jwks_server: JwksServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    clock = Clock()
    verifier = JwtVerifier(jwks_url=jwks_server.url, clock=clock)
    await verifier.verify(rs_token(rsa_key, "k1"))
    assert jwks_server.requests == 1
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with jwks_server.lock:
        jwks_server.jwks = {"keys": jwks_of(rsa_key, "k1")["keys"] + jwks_of(rotated, "k2")["keys"]}
    # Made-up key ids within the cooldown do not reach the identity provider.
    clock.now += 10
    for kid in ("x1", "x2", "k2"):
        assert "is not one the server knows" in await refused(verifier, rs_token(rotated, kid))
    assert jwks_server.requests == 1
    # After the cooldown the rotated key is fetched once and accepted.
    clock.now += 30
    assert (await verifier.verify(rs_token(rotated, "k2", sub="bob"))).name == "jwt:bob"
    assert (await verifier.verify(rs_token(rsa_key, "k1"))).name == "jwt:alice"
    assert jwks_server.requests == 2


async def test_an_unreachable_jwks_url_refuses_with_a_clear_message(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    verifier = JwtVerifier(jwks_url=f"http://127.0.0.1:{port}/jwks.json", clock=Clock())
    for _ in range(3):  # within the cooldown, the outage is told without fetching again
        assert "cannot fetch the keys" in await refused(verifier, rs_token(rsa_key, "k1"))


async def test_a_verified_token_is_remembered_for_a_minute_at_most(
    jwks_server: JwksServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    clock = Clock()
    verifier = JwtVerifier(jwks_url=jwks_server.url, clock=clock)
    token = rs_token(rsa_key, "k1")
    assert (await verifier.verify(token)).name == "jwt:alice"
    # The key leaves the JWKS (revoked) and the JWKS is fetched again.
    with jwks_server.lock:
        jwks_server.jwks = {"keys": []}
    clock.now += 59
    assert (await verifier.verify(token)).name == "jwt:alice"  # from memory
    assert jwks_server.requests == 1
    clock.now += 301
    assert "is not one the server knows" in await refused(verifier, token)
    assert jwks_server.requests == 2
