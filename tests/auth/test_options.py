"""`cairn serve`'s auth options: parsing, checking, and when an address may run open."""

from __future__ import annotations

import argparse
import pathlib

import pytest
import trustme

from cairn_server.auth import (
    AuthConfig,
    add_arguments,
    exposure_error,
    from_args,
    identity_configured,
    validate,
)

SECRET = "k" * 32


def parse(*argv: str, environ: dict[str, str] | None = None) -> AuthConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return from_args(parser.parse_args(argv), environ or {})


@pytest.fixture
def pems(tmp_path: pathlib.Path) -> dict[str, str]:
    ca = trustme.CA()
    cert = ca.issue_cert("cairn.example")
    paths = {"cert": tmp_path / "cert.pem", "key": tmp_path / "key.pem", "ca": tmp_path / "ca.pem"}
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    ca.cert_pem.write_to_path(str(paths["ca"]))
    other = trustme.CA().issue_cert("other.example")
    paths["other_key"] = tmp_path / "other_key.pem"
    other.private_key_pem.write_to_path(str(paths["other_key"]))
    return {name: str(path) for name, path in paths.items()}


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1:50051",
        "127.0.0.2:50051",
        "[::1]:50051",
        "localhost:50051",
        "unix:/tmp/cairn.sock",
        "unix-abstract:cairn",
    ],
)
def test_loopback_addresses_may_run_open(address: str) -> None:
    assert exposure_error(address, AuthConfig()) is None


@pytest.mark.parametrize(
    "address", ["0.0.0.0:50051", "[::]:50051", ":50051", "10.1.2.3:50051", "cairn.internal:50051"]
)
def test_other_addresses_need_tls_and_identity_or_insecure(
    address: str, pems: dict[str, str]
) -> None:
    message = exposure_error(address, AuthConfig())
    assert message is not None and "\n" not in message
    assert address in message and "without TLS and without caller identity" in message
    assert "--insecure" in message
    tls = AuthConfig(tls_cert=pems["cert"], tls_key=pems["key"])
    message = exposure_error(address, tls)
    assert message is not None and "without caller identity" in message
    assert "--jwt-secret-file" in message
    identity = AuthConfig(jwt_secret=SECRET.encode())
    message = exposure_error(address, identity)
    assert message is not None and "without TLS" in message and "--tls-cert" in message
    for source in (
        {"jwt_secret": SECRET.encode()},
        {"jwt_jwks": "https://idp.example/jwks.json"},
        {"access_file": "access.json"},
        {"tls_client_ca": pems["ca"]},
    ):
        config = AuthConfig(tls_cert=pems["cert"], tls_key=pems["key"], **source)  # type: ignore[arg-type]
        assert identity_configured(config)
        assert exposure_error(address, config) is None
    assert exposure_error(address, AuthConfig(insecure=True)) is None


def test_flags_and_environment_become_the_config(
    tmp_path: pathlib.Path, pems: dict[str, str]
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    access = tmp_path / "access.json"
    access.write_text('{"api_keys": []}')
    config = parse(
        "--tls-cert", pems["cert"], "--tls-key", pems["key"], "--tls-client-ca", pems["ca"],
        "--jwt-secret-file", str(secret_file), "--jwt-issuer", "https://idp",
        "--jwt-audience", "cairn", "--jwt-roles-claim", "roles", "--access-file", str(access),
        "--rate-limit", "5", "--rate-burst", "10", "--max-runs-per-namespace", "100",
        "--max-workers-per-namespace", "7",
        environ={"CAIRN_RELAY_CREDENTIAL": "cairn_relay"},
    )  # fmt: skip
    assert config.jwt_secret == SECRET.encode()  # the file's final newline is not part of it
    assert (config.jwt_issuer, config.jwt_audience, config.jwt_roles_claim) == (
        "https://idp",
        "cairn",
        "roles",
    )
    assert config.relay_credential == "cairn_relay"
    assert config.relay_metadata() == (("authorization", "Bearer cairn_relay"),)
    assert (config.rate_limit, config.rate_burst) == (5.0, 10)
    assert (config.max_runs_per_namespace, config.max_workers_per_namespace) == (100, 7)
    assert SECRET not in repr(config) and "cairn_relay" not in repr(config)
    from_env = parse(environ={"CAIRN_JWT_SECRET": SECRET})
    assert from_env.jwt_secret == SECRET.encode()
    assert parse() == AuthConfig()


@pytest.mark.parametrize(
    ("config", "complaint"),
    [
        (lambda p: AuthConfig(tls_cert=p["cert"]), "--tls-cert and --tls-key go together"),
        (lambda p: AuthConfig(tls_key=p["key"]), "--tls-cert and --tls-key go together"),
        (lambda p: AuthConfig(tls_cert=p["cert"], tls_key=p["other_key"]), "is not the key of"),
        (lambda p: AuthConfig(tls_cert=p["key"], tls_key=p["key"]), "not a PEM certificate"),
        (lambda p: AuthConfig(tls_cert=p["cert"], tls_key=p["cert"]), "not a PEM private key"),
        (lambda p: AuthConfig(tls_cert="/nope.pem", tls_key=p["key"]), "cannot read it"),
        (lambda p: AuthConfig(tls_client_ca=p["ca"]), "--tls-client-ca needs --tls-cert"),
        (lambda p: AuthConfig(jwt_secret=b"short"), "at least 32"),
        (lambda p: AuthConfig(jwt_issuer="x"), "--jwt-issuer needs"),
        (lambda p: AuthConfig(jwt_jwks="/nope.json"), "cannot read the JWKS file"),
        (lambda p: AuthConfig(access_file="/nope.json"), "cannot read the access file"),
        (lambda p: AuthConfig(rate_limit=0), "--rate-limit must be a positive"),
        (lambda p: AuthConfig(rate_burst=5), "--rate-burst needs --rate-limit"),
        (lambda p: AuthConfig(max_runs_per_namespace=0), "--max-runs-per-namespace must be"),
    ],
)
def test_bad_configs_are_one_line_value_errors(
    config: object, complaint: str, pems: dict[str, str]
) -> None:
    with pytest.raises(ValueError) as caught:
        validate(config(pems))  # type: ignore[operator]
    assert complaint in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_empty_secret_file_is_refused(tmp_path: pathlib.Path) -> None:
    empty = tmp_path / "secret"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        parse("--jwt-secret-file", str(empty))
