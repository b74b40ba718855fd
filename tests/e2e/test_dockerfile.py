"""The Dockerfile's command is the secure configuration, and it works.

No Docker daemon here, so the image's command and environment are taken from
the Dockerfile and run as they are, with the files it expects mounted at
/etc/cairn and /data made in the test (the certificate names `cairn`, the
server name the image's health check uses), on a loopback port.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess

import pytest
import trustme

from cairn import SyncClient, TlsConfig, UnauthenticatedError
from cairn_server.auth import hash_api_key, new_api_key
from tests.e2e.processes import BIN, ROOT, Process, free_port, stopping

DOCKERFILE = ROOT / "Dockerfile"


def instruction(name: str) -> str:
    """The last `name` instruction of the final stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line for line in text.splitlines() if line.startswith(f"{name} ")]
    return lines[-1].removeprefix(f"{name} ").strip()


def image_environment() -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", instruction("ENV")))


def test_the_image_serves_tls_with_identity_and_never_runs_open() -> None:
    command = json.loads(instruction("CMD"))
    assert "--insecure" not in command
    assert {"--tls-cert", "--tls-key", "--access-file"} <= set(command)
    assert command[command.index("--address") + 1].startswith("0.0.0.0:")


def test_the_images_command_starts_and_its_health_check_passes(tmp_path: pathlib.Path) -> None:
    ca = trustme.CA()
    certificate = ca.issue_cert("cairn", "127.0.0.1")
    mounted = {
        "/etc/cairn/tls.crt": tmp_path / "tls.crt",
        "/etc/cairn/tls.key": tmp_path / "tls.key",
        "/etc/cairn/ca.crt": tmp_path / "ca.crt",
        "/etc/cairn/access.json": tmp_path / "access.json",
        "sqlite:////data/cairn.db": f"sqlite:///{tmp_path / 'cairn.db'}",
    }
    certificate.cert_chain_pems[0].write_to_path(str(tmp_path / "tls.crt"))
    certificate.private_key_pem.write_to_path(str(tmp_path / "tls.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.crt"))
    key = new_api_key()
    entry = {"name": "ops", "sha256": hash_api_key(key), "grants": ["default:reader"]}
    (tmp_path / "access.json").write_text(json.dumps({"api_keys": [entry]}))
    address = f"127.0.0.1:{free_port()}"
    command = [str(mounted.get(arg, arg)) for arg in json.loads(instruction("CMD"))]
    command[command.index("--address") + 1] = address
    environment = {k: str(mounted.get(v, v)) for k, v in image_environment().items()}

    server = Process([str(BIN / "cairn"), *command], env=environment).start()
    with stopping(server):
        server.wait_for_line("cairn serving on")
        health = subprocess.run(
            [str(BIN / "cairn"), "health", "--address", address],
            env={**os.environ, **environment},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert (health.returncode, health.stdout.strip()) == (0, "SERVING"), health.stderr
        tls = TlsConfig(ca_file=str(tmp_path / "ca.crt"), server_name="cairn")
        with SyncClient(address, api_key=key, tls=tls) as client:
            assert client.list_threads() == []
        with SyncClient(address, tls=tls) as client, pytest.raises(UnauthenticatedError):
            client.list_threads()
