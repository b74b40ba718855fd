"""The Studio's HTTP gateway against the real server: JSON in and out of the
public API, errors with their reasons, a run started and followed as
server-sent events from a last event id, the browser user's credential and
namespace, and the guards against other sites (DESIGN.md 8.5)."""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from cairn import Client, entrypoint, interrupt, task
from cairn._credentials import ConnectionSettings, TlsConfig
from cairn_server.server import CairnServer, ServerConfig, create_server
from cairn_server.studio import StudioConfig, open_studio
from tests.api.secured import WAIT, Workers, secured_server, token

JSON = {"Content-Type": "application/json"}


@task
def shout(text: str) -> str:
    return text.upper()


@entrypoint()
def approve(draft: str) -> dict[str, Any]:
    loud = shout(draft).result()
    answer = interrupt({"question": "publish?", "draft": loud})
    return {"draft": loud, "published": answer is True}


@pytest.fixture
async def served(db_path: pathlib.Path) -> AsyncIterator[tuple[CairnServer, str, str]]:
    """`cairn serve --ui-address 127.0.0.1:0`: the server, its address, the Studio's URL."""
    config = ServerConfig(
        address="127.0.0.1:0", store_url=f"sqlite:///{db_path}", ui_address="127.0.0.1:0"
    )
    server, port = await create_server(config)
    try:
        yield server, f"127.0.0.1:{port}", f"http://127.0.0.1:{server.studio_port}"
    finally:
        await server.stop(grace=0.5)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session:
        yield session


async def post(http: aiohttp.ClientSession, url: str, body: Any, **headers: str) -> tuple[int, Any]:
    async with http.post(url, data=json.dumps(body), headers={**JSON, **headers}) as response:
        return response.status, await response.json()


async def sse(http: aiohttp.ClientSession, url: str, **headers: str) -> list[tuple[str, str, Any]]:
    """Every (event, id, data) of a server-sent event stream until it ends."""
    found: list[tuple[str, str, Any]] = []
    async with http.get(url, headers=headers) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "text/event-stream"
        text = (await response.read()).decode()
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        if fields:
            found.append(
                (fields.get("event", "message"), fields.get("id", ""), json.loads(fields["data"]))
            )
    return found


async def test_unary_calls_answer_json_and_errors_carry_their_reason(
    served: tuple[CairnServer, str, str], http: aiohttp.ClientSession
) -> None:
    _, address, url = served
    async with Client(address) as client:
        await client.create_thread("t-1", metadata={"team": "red"})

    status, body = await post(http, f"{url}/api/ThreadService/ListThreads", {"page_size": 5})
    assert status == 200
    assert [t["thread_id"] for t in body["threads"]] == ["t-1"]
    assert body["threads"][0]["status"] == "THREAD_STATUS_IDLE"
    assert body["threads"][0]["metadata"] == {"team": "red"}
    assert body["next_page_token"] == ""  # defaults are included

    status, body = await post(http, f"{url}/api/ThreadService/GetState", {"thread_id": "nope"})
    assert (status, body["code"], body["reason"]) == (404, "NOT_FOUND", "THREAD_NOT_FOUND")
    assert body["metadata"] == {"thread_id": "nope"}

    status, body = await post(http, f"{url}/api/ThreadService/ListThreads", {"page_size": -1})
    assert (status, body["code"]) == (400, "INVALID_ARGUMENT")
    status, body = await post(http, f"{url}/api/ThreadService/GetState", {"thread": "t-1"})
    assert (status, body["reason"]) == (400, "INVALID_ARGUMENT")
    assert "GetStateRequest" in body["message"]
    status, body = await post(http, f"{url}/api/ThreadService/GetState", ["t-1"])
    assert status == 400
    # Only what the page uses: nothing destructive beyond it, no checkpoint writes.
    for method in ("ThreadService/PruneThreads", "ThreadService/DeleteThread", "Nope/Nope"):
        status, body = await post(http, f"{url}/api/{method}", {})
        assert status == 404, method
    huge = json.dumps({"thread_id": "x" * (17 * 1024 * 1024)})
    async with http.post(f"{url}/api/ThreadService/GetState", data=huge, headers=JSON) as response:
        body = await response.json()
        assert (response.status, body["reason"]) == (413, "PAYLOAD_TOO_LARGE")
    async with http.post(f"{url}/api/ThreadService/ListThreads", data="{") as response:
        assert response.status == 415  # not declared JSON
    async with http.post(
        f"{url}/api/ThreadService/ListThreads", data="{", headers=JSON
    ) as response:
        assert (response.status, (await response.json())["code"]) == (400, "INVALID_ARGUMENT")


async def test_the_page_is_served_with_a_strict_policy_and_only_to_its_own_host(
    served: tuple[CairnServer, str, str], http: aiohttp.ClientSession
) -> None:
    _, _, url = served
    async with http.get(f"{url}/") as response:
        assert response.status == 200
        assert "Cairn Studio" in await response.text()
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
    async with http.get(f"{url}/api/studio") as response:
        assert (await response.json())["version"]
    # A DNS-rebinding page reaches the port under its own host name.
    async with http.get(f"{url}/", headers={"Host": "evil.example:80"}) as response:
        assert response.status == 421
    # Another site's script or form cannot call the API.
    status, body = await post(
        http, f"{url}/api/ThreadService/ListThreads", {}, Origin="http://evil.example"
    )
    assert (status, body["code"]) == (403, "PERMISSION_DENIED")
    async with http.get(f"{url}/static/../../gateway.py") as response:
        assert response.status in (403, 404)


async def test_a_run_started_from_the_page_is_followed_from_its_last_event_id(
    served: tuple[CairnServer, str, str], http: aiohttp.ClientSession
) -> None:
    _, address, url = served
    workers = Workers(address)
    await workers.start([approve, shout])
    try:
        status, body = await post(
            http,
            f"{url}/api/runs",
            {
                "thread_id": "t-run",
                "target": "approve",
                "input": "hello",
                "create_thread": True,
                "stream_modes": ["STREAM_MODE_UPDATES", "STREAM_MODE_TASKS"],
            },
        )
        assert status == 200, body
        run = body["run"]
        assert run["state"] == "RUN_STATE_RUNNING"

        events = await sse(http, f"{url}/api/runs/{run['run_id']}/events")
        assert events[-1] == ("end", "", {})
        ids = [int(event_id) for _, event_id, _ in events[:-1]]
        assert ids == list(range(1, len(ids) + 1))
        last = events[-2][2]
        assert last["run"]["state"] == "RUN_STATE_INTERRUPTED"
        [pending] = last["run"]["interrupts"]
        assert pending["value"] == {"question": "publish?", "draft": "HELLO"}

        # A reconnecting page gets exactly what it missed.
        again = await sse(http, f"{url}/api/runs/{run['run_id']}/events", **{"Last-Event-ID": "2"})
        assert [int(i) for _, i, _ in again[:-1]] == ids[2:]
        assert [d for _, _, d in again] == [d for _, _, d in events[2:]]

        # Answering the interrupt is a run too; the stream left early does not stop it.
        status, body = await post(
            http, f"{url}/api/runs", {"thread_id": "t-run", "command": {"resume": True}}
        )
        assert status == 200, body
        resumed = await sse(http, f"{url}/api/runs/{body['run']['run_id']}/events?after=0")
        assert resumed[-2][2]["run"]["state"] == "RUN_STATE_SUCCEEDED"
        status, state = await post(
            http, f"{url}/api/ThreadService/GetState", {"thread_id": "t-run"}
        )
        assert state["state"]["values"] == {"draft": "HELLO", "published": True}

        status, body = await post(
            http, f"{url}/api/runs", {"thread_id": "t-run", "command": {"resume": 1}}
        )
        assert (status, body["reason"]) == (412, "NO_PENDING_INTERRUPT")
        async with http.get(
            f"{url}/api/runs/{run['run_id']}/events", headers={"Last-Event-ID": "x"}
        ) as response:
            assert response.status == 400
    finally:
        await workers.stop_all()


async def test_each_browser_user_acts_with_their_own_credential_and_namespace(
    tmp_path: pathlib.Path, http: aiohttp.ClientSession
) -> None:
    async with secured_server(tmp_path, api_keys={"reader-a": ["team-a:reader"]}) as secured:
        studio, port = await open_studio(
            StudioConfig(
                address="127.0.0.1:0",
                server=secured.address,
                connection=ConnectionSettings.resolve(tls=False, environ={}),
            )
        )
        url = f"http://127.0.0.1:{port}/api/ThreadService/ListThreads"
        try:
            writer = token("w", "team-a:writer", "default:writer")
            async with Client(secured.address, token=writer, namespace="team-a") as client:
                await client.create_thread("only-in-a")
            async with Client(secured.address, token=writer) as client:
                await client.create_thread("only-in-default")

            status, body = await post(http, url, {})
            assert (status, body["code"]) == (401, "UNAUTHENTICATED")
            key = secured.api_keys["reader-a"]
            status, body = await post(
                http, url, {}, Authorization=f"Bearer {key}", **{"X-Cairn-Namespace": "team-a"}
            )
            assert status == 200
            assert [t["thread_id"] for t in body["threads"]] == ["only-in-a"]
            status, body = await post(http, url, {}, Authorization=f"Bearer {key}")
            assert (status, body["reason"]) == (404, "NAMESPACE_NOT_FOUND")
            status, body = await post(http, url, {}, Authorization="Bearer cairn_wrong")
            assert status == 401
            # Headers gRPC cannot carry are refused as what they are, not as a crash.
            async with http.post(
                url, data=b"{}", headers={**JSON, "Authorization": "Bearer \u00e9"}
            ) as response:
                assert (response.status, (await response.json())["code"]) == (
                    401,
                    "UNAUTHENTICATED",
                )
            async with http.post(
                url, data=b"{}", headers={**JSON, "X-Cairn-Namespace": "\u00e9t\u00e9"}
            ) as response:
                assert (response.status, (await response.json())["reason"]) == (
                    400,
                    "INVALID_NAMESPACE",
                )
            # A reader may look but not start runs.
            status, body = await post(
                http,
                f"http://127.0.0.1:{port}/api/runs",
                {"thread_id": "only-in-a", "input": 1, "target": "x"},
                Authorization=f"Bearer {key}",
                **{"X-Cairn-Namespace": "team-a"},
            )
            assert (status, body["code"]) == (403, "PERMISSION_DENIED")
        finally:
            await studio.stop()


async def test_a_studio_that_shows_a_client_certificate_requires_a_signed_in_user(
    http: aiohttp.ClientSession, served: tuple[CairnServer, str, str], tmp_path: pathlib.Path
) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("studio")
    cert_file, key_file = tmp_path / "studio.pem", tmp_path / "studio.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    connection = ConnectionSettings.resolve(
        tls=TlsConfig(ca_file=ca_file, cert_file=cert_file, key_file=key_file), environ={}
    )
    studio, port = await open_studio(
        StudioConfig(address="127.0.0.1:0", server=served[1], connection=connection)
    )
    try:
        status, body = await post(
            http, f"http://127.0.0.1:{port}/api/ThreadService/ListThreads", {}
        )
        # Refused before any call: the certificate must not act for an anonymous visitor.
        assert (status, body["code"]) == (401, "UNAUTHENTICATED")
        assert "sign in" in body["message"]
    finally:
        await studio.stop()


async def test_stopping_the_server_ends_a_followed_stream(
    db_path: pathlib.Path, http: aiohttp.ClientSession
) -> None:
    config = ServerConfig(
        address="127.0.0.1:0", store_url=f"sqlite:///{db_path}", ui_address="127.0.0.1:0"
    )
    server, port = await create_server(config)
    gate = asyncio.Event()

    @entrypoint()
    async def held(x: int) -> int:
        await gate.wait()
        return x

    workers = Workers(f"127.0.0.1:{port}")
    await workers.start([held])
    url = f"http://127.0.0.1:{server.studio_port}"
    stopped = False
    try:
        status, body = await post(
            http,
            f"{url}/api/runs",
            {"thread_id": "t-held", "target": "held", "input": 1, "create_thread": True},
        )
        assert status == 200
        async with http.get(f"{url}/api/runs/{body['run']['run_id']}/events") as response:
            first = await response.content.readuntil(b"\n\n")
            assert first.startswith(b"id: 1\n")
            stopping = asyncio.ensure_future(server.stop(grace=0.5))
            rest = await asyncio.wait_for(response.content.read(), WAIT)
            assert b"event: end" not in rest
            await asyncio.wait_for(stopping, WAIT)
            stopped = True
    finally:
        gate.set()
        await workers.stop_all()
        if not stopped:
            await server.stop(grace=0.5)
