"""`cairn studio`: the Studio alone, as a real process in front of a real
`cairn serve`, and the mistakes it refuses at start with one line."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import urllib.request

from tests.e2e.processes import BIN, Process, free_port, serve


def call(url: str, method: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        f"{url}api/{method}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, object] = json.load(response)
        return answer


def test_cairn_studio_serves_the_api_of_a_running_server(tmp_path: pathlib.Path) -> None:
    port = free_port()
    server = serve(f"sqlite:///{tmp_path / 'cairn.db'}", port)
    command = [str(BIN / "cairn"), "studio", "--address", f"127.0.0.1:{port}"]
    studio = Process([*command, "--ui-address", "127.0.0.1:0"]).start()
    try:
        line = studio.wait_for_line("cairn studio on")
        match = re.search(r"(http://127\.0\.0\.1:\d+/) for 127\.0\.0\.1:(\d+)$", line)
        assert match is not None, line
        url = match.group(1)
        assert int(match.group(2)) == port
        assert call(url, "ThreadService/ListThreads", {}) == {"threads": [], "next_page_token": ""}
        with urllib.request.urlopen(url, timeout=10) as page:
            assert b"Cairn Studio" in page.read()
    finally:
        assert studio.stop() == 0
        server.stop()


def studio_refuses(*options: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(BIN / "cairn"), "studio", *options],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert done.returncode == 1, done
    [line] = done.stderr.strip().splitlines()
    return line


def test_cairn_studio_refuses_a_credential_and_plain_http_beyond_loopback() -> None:
    line = studio_refuses("--ui-address", "127.0.0.1:0", "--api-key", "cairn_x")
    assert line.startswith("cairn studio: the Studio takes no credential of its own")
    line = studio_refuses("--ui-address", "0.0.0.0:0")
    assert "over plain HTTP" in line and "--https-cert" in line
    line = studio_refuses("--ui-address", "127.0.0.1:0", "--https-cert", "c.pem")
    assert "go together" in line
