"""The `cairn` command: serve, health, and a clean exit on SIGTERM."""

from __future__ import annotations

import pathlib
import subprocess

from tests.e2e.processes import BIN, free_port, start_server


def health(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "cairn"), "health", "--address", f"127.0.0.1:{port}", "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_health_reports_serving_then_server_exits_cleanly_on_sigterm(
    tmp_path: pathlib.Path,
) -> None:
    port = free_port()
    server = start_server(tmp_path / "cli.db", port)
    try:
        checked = health(port)
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout.strip() == "SERVING"
    finally:
        assert server.stop() == 0
    assert (tmp_path / "cli.db").exists()
    down = health(port)
    assert down.returncode == 1
    assert "unhealthy: UNAVAILABLE" in down.stderr
