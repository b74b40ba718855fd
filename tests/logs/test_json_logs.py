"""Structured logs (`cairn serve --log-format json`): a line about a task's
failure carries the ids its caller knows (thread, run, task, namespace), every
line is one JSON object, and the text format reads as it always did."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import pathlib
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from cairn import Client, RunFailedError, Worker, entrypoint, task
from cairn._context import current
from cairn_server import logs
from tests.conftest import StartWorker
from tests.e2e.processes import free_port, serve

NAMESPACE = "team-a"
THREAD = "t-logs"
FAILED_TASKS: list[str] = []


@task
async def explode(x: str) -> str:
    FAILED_TASKS.append(current().task_id)
    raise ValueError(f"cannot take {x}")  # not retried (a programming error)


@entrypoint()
async def calls_explode(x: str) -> str:
    return await explode(x)


class Lines(logging.Handler):
    """Keeps every formatted line."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[tuple[Lines, Lines]]:
    """(JSON lines, text lines) of everything logged at INFO and above."""
    as_json, as_text = Lines(logs.formatter("json")), Lines(logs.formatter("text"))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(as_json)
    root.addHandler(as_text)
    FAILED_TASKS.clear()
    try:
        yield as_json, as_text
    finally:
        root.removeHandler(as_json)
        root.removeHandler(as_text)
        root.setLevel(level)


def _failure(entries: list[dict[str, Any]]) -> dict[str, Any]:
    found = [e for e in entries if e.get("task_name") == "explode"]
    assert len(found) == 1, entries
    return found[0]


async def test_a_task_failure_is_one_json_line_with_the_ids_its_caller_knows(
    address: str, start_worker: StartWorker, captured: tuple[Lines, Lines]
) -> None:
    as_json, as_text = captured
    await start_worker([calls_explode, explode], namespace=NAMESPACE)
    async with Client(address, namespace=NAMESPACE) as client:
        with pytest.raises(RunFailedError) as failed:
            await client.invoke("calls_explode", "x", thread_id=THREAD)
        await client.delete_thread(THREAD)
    run_id = failed.value.run.run_id
    [task_id] = FAILED_TASKS

    entries = [json.loads(line) for line in as_json.lines]  # every line is JSON
    assert all(isinstance(e, dict) for e in entries)
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
        assert "\x1f" not in json.dumps(entry, ensure_ascii=False)  # no scoped key leaks

    line = _failure(entries)
    assert line["level"] == "WARNING"
    assert line["logger"] == "cairn_server.runtime.handle"
    assert line["thread_id"] == THREAD
    assert line["namespace"] == NAMESPACE
    assert line["run_id"] == run_id
    assert line["task_id"] == task_id
    assert line["task_name"] == "explode"
    assert line["target"] == "calls_explode"
    assert "ValueError: cannot take x" in line["message"]

    # The worker's own lines name it and its namespace.
    connected = next(e for e in entries if e["message"].startswith("worker "))
    assert connected["namespace"] == NAMESPACE and connected["worker_id"]

    # Audit lines keep their fields.
    audit = next(e for e in entries if e["logger"] == "cairn.audit")
    assert audit["audit"]["event"] == "destructive"
    assert audit["audit"]["thread_id"] == THREAD
    assert audit["namespace"] == NAMESPACE

    # The same line as text reads as `cairn serve` always wrote it.
    text = next(t for t in as_text.lines if "(explode) failed" in t)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING cairn_server\.runtime\.handle: "
        rf"run {run_id}: task {task_id} \(explode\) failed on attempt 1: "
        r"ValueError: cannot take x",
        text,
    ), text


def test_an_exception_is_one_field_of_its_line() -> None:
    record = logging.LogRecord("x", logging.ERROR, "", 0, "went %s", ("wrong",), None)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "went wrong"
    assert entry["level"] == "ERROR"
    assert entry["exception"].startswith("Traceback") and "RuntimeError: boom" in entry["exception"]


async def test_cairn_serve_log_format_json_prints_json_lines(tmp_path: pathlib.Path) -> None:
    server = serve(f"sqlite:///{tmp_path / 'logs.db'}", free_port(), "--log-format", "json")
    try:
        serving = json.loads(server.wait_for_line("cairn serving on"))
        address = serving["message"].split()[3]
        worker = Worker(address, functions=[calls_explode, explode], namespace=NAMESPACE)
        running = asyncio.ensure_future(worker.run())
        try:
            await asyncio.wait_for(worker.connected.wait(), 10)
            async with Client(address, namespace=NAMESPACE) as client:
                with pytest.raises(RunFailedError) as failed:
                    await client.invoke("calls_explode", "y", thread_id=THREAD)
        finally:
            await worker.stop(grace=1)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(running, 5)
    finally:
        assert server.stop() == 0
    assert server.lines, "the server printed nothing"
    entries = [json.loads(line) for line in server.lines]  # every line is JSON
    line = _failure(entries)
    assert line["run_id"] == failed.value.run.run_id
    assert line["thread_id"] == THREAD and line["namespace"] == NAMESPACE
    assert line["task_id"] == FAILED_TASKS[-1]
    assert entries[-1]["message"] == "shutting down"
