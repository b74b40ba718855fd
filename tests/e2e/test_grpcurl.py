"""An operator's view: grpcurl against a real `cairn serve` process and a real
worker process, with no proto files (server reflection), JSON in and out."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.processes import free_port, start_server, start_worker, stopping

GRPCURL = pathlib.Path(sys.executable).parent / "grpcurl"
ESSAY = {"essay": "An essay about topic: cat", "action": "Please approve/reject the essay"}


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A `cairn serve` process and a worker process serving worker_app.py."""
    tmp = tmp_path_factory.mktemp("grpcurl")
    port = free_port()
    address = f"127.0.0.1:{port}"
    server = start_server(tmp / "cairn.db", port)
    with stopping(server):
        worker = start_worker(address, tmp / "tasks.log")
        with stopping(worker):
            yield address


def grpcurl(address: str, *args: str, data: dict[str, Any] | None = None) -> str:
    """Run grpcurl; returns its stdout, failing the test on a non-zero exit."""
    command = [str(GRPCURL), "-plaintext", "-max-time", "30"]
    if data is not None:
        command += ["-d", json.dumps(data)]
    command += [address, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stderr}"
    return done.stdout


def json_documents(text: str) -> list[Any]:
    """The JSON objects grpcurl prints one after another for a stream."""
    decoder = json.JSONDecoder()
    documents, position = [], 0
    text = text.strip()
    while position < len(text):
        document, end = decoder.raw_decode(text, position)
        documents.append(document)
        position = end
        while position < len(text) and text[position].isspace():
            position += 1
    return documents


def test_list_shows_every_service(address: str) -> None:
    services = grpcurl(address, "list").split()
    for name in (
        "cairn.v1.RunService",
        "cairn.v1.ThreadService",
        "cairn.v1.WorkerService",
        "cairn.v1.StoreService",
        "cairn.v1.ScheduleService",
        "grpc.health.v1.Health",
    ):
        assert name in services
    assert any(s.startswith("grpc.reflection.") for s in services), services


def test_describe_service_and_message(address: str) -> None:
    service = grpcurl(address, "describe", "cairn.v1.RunService")
    assert "cairn.v1.RunService is a service" in service
    for rpc in ("Invoke", "Stream", "Session", "JoinRun", "GetRun", "CancelRun"):
        assert f"rpc {rpc} " in service
    assert "stream .cairn.v1.SessionRequest" in service  # Session is bidirectional

    message = grpcurl(address, "describe", "cairn.v1.InvokeRequest")
    assert "cairn.v1.InvokeRequest is a message" in message
    for field in ("thread_id", "target", "google.protobuf.Value input", "Command command"):
        assert field in message


def test_health_check_prints_serving(address: str) -> None:
    assert json.loads(grpcurl(address, "grpc.health.v1.Health/Check")) == {"status": "SERVING"}


def test_invoke_interrupts_then_resume_from_grpcurl(address: str) -> None:
    started = json.loads(
        grpcurl(
            address,
            "cairn.v1.RunService/Invoke",
            data={
                "threadId": "g1",
                "target": "essay",
                "input": {"topic": "cat"},
                "createThread": True,
                "durability": "DURABILITY_SYNC",
            },
        )
    )["run"]
    assert started["state"] == "RUN_STATE_INTERRUPTED"
    assert started["durability"] == "DURABILITY_SYNC"
    [pending] = started["interrupts"]
    assert pending["value"] == ESSAY
    assert pending["id"]

    state = json.loads(
        grpcurl(address, "cairn.v1.ThreadService/GetState", data={"threadId": "g1"})
    )["state"]
    assert [i["id"] for i in state["interrupts"]] == [pending["id"]]
    thread = json.loads(
        grpcurl(address, "cairn.v1.ThreadService/GetThread", data={"threadId": "g1"})
    )["thread"]
    assert thread["status"] == "THREAD_STATUS_INTERRUPTED"

    resumed = json.loads(
        grpcurl(
            address,
            "cairn.v1.RunService/Invoke",
            data={"threadId": "g1", "command": {"resume": True}},
        )
    )["run"]
    assert resumed["state"] == "RUN_STATE_SUCCEEDED"
    assert resumed["output"] == {"essay": ESSAY["essay"], "is_approved": True}
    assert resumed["threadId"] == "g1" and resumed["runId"] != started["runId"]


def test_stream_prints_updates_events(address: str) -> None:
    output = grpcurl(
        address,
        "cairn.v1.RunService/Stream",
        data={
            "threadId": "g2",
            "target": "essay",
            "input": {"topic": "dog"},
            "createThread": True,
            "streamModes": ["STREAM_MODE_UPDATES"],
        },
    )
    events = [document["event"] for document in json_documents(output)]
    assert [int(e["eventId"]) for e in events] == list(range(1, len(events) + 1))
    assert len({e["runId"] for e in events}) == 1
    first, last = events[0], events[-1]
    assert first["run"]["state"] == "RUN_STATE_RUNNING"
    assert last["run"]["state"] == "RUN_STATE_INTERRUPTED"
    chunks = [e["chunk"] for e in events if "chunk" in e]
    assert all(c["mode"] == "STREAM_MODE_UPDATES" for c in chunks)
    assert chunks[0]["data"] == {"write_essay": "An essay about topic: dog"}
    [interrupt] = chunks[-1]["data"]["__interrupt__"]
    assert interrupt["value"]["essay"] == "An essay about topic: dog"
    assert interrupt["id"] == last["run"]["interrupts"][0]["id"]


def test_errors_show_code_and_error_info(address: str) -> None:
    command = [
        str(GRPCURL), "-plaintext", "-max-time", "30",
        "-d", json.dumps({"threadId": "no-such-thread"}),
        address, "cairn.v1.ThreadService/GetThread",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "Code: NotFound" in done.stderr
    assert "google.rpc.ErrorInfo" in done.stderr
    assert '"reason":"THREAD_NOT_FOUND"' in done.stderr.replace(" ", "")
    assert '"thread_id":"no-such-thread"' in done.stderr.replace(" ", "")


def test_memories_from_grpcurl(address: str) -> None:
    """The README's memory example: JSON in, JSON out, vectors as numbers."""
    stored = json.loads(
        grpcurl(
            address,
            "cairn.v1.StoreService/PutItem",
            data={
                "namespace": ["users", "u-42"],
                "key": "prefs",
                "value": {"food": "pizza", "tone": "brief"},
                "vectors": [{"path": "food", "values": [0.1, 0.9]}],
                "ttl": "86400s",
            },
        )
    )
    assert stored["item"]["value"] == {"food": "pizza", "tone": "brief"}
    assert "expireTime" in stored["item"]
    found = json.loads(
        grpcurl(
            address,
            "cairn.v1.StoreService/SearchItems",
            data={"namespacePrefix": ["users"], "filter": {"tone": "brief"}, "queryVector": [0, 1]},
        )
    )
    [hit] = found["items"]
    assert hit["item"]["key"] == "prefs"
    assert 0.99 < hit["score"] <= 1.0


def test_schedules_from_grpcurl(address: str) -> None:
    """The README's schedule example: a cron expression in a time zone."""
    request = {
        "scheduleId": "digest",
        "cron": "0 8 * * MON-FRI",
        "timeZone": "Europe/Paris",
        "target": "essay_writer",
        "input": {"topic": "news"},
        "overlapPolicy": "SCHEDULE_OVERLAP_POLICY_SKIP",
    }
    created = json.loads(grpcurl(address, "cairn.v1.ScheduleService/CreateSchedule", data=request))
    schedule = created["schedule"]
    assert (schedule["cron"], schedule["timeZone"]) == ("0 8 * * MON-FRI", "Europe/Paris")
    assert schedule["input"] == {"topic": "news"}
    assert "nextFireTime" in schedule
    paused = json.loads(
        grpcurl(address, "cairn.v1.ScheduleService/PauseSchedule", data={"scheduleId": "digest"})
    )
    assert paused["schedule"]["paused"] is True
    assert "nextFireTime" not in paused["schedule"]
    listed = json.loads(grpcurl(address, "cairn.v1.ScheduleService/ListSchedules"))
    assert [s["scheduleId"] for s in listed["schedules"]] == ["digest"]
