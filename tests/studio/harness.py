"""Processes and data for Cairn Studio's browser tests and bench/studio.py
(no browser here): a real `cairn serve --ui-address`, worker processes
serving tests/studio/studio_app.py, runs started and left running, API keys,
and a thread with a long history written through CairnSaver.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import pathlib
import re
import subprocess
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6

from cairn import Client, RunEvent
from cairn.langgraph import CairnSaver
from tests.e2e.processes import BIN, Process, free_port, serve_on

APP = pathlib.Path(__file__).with_name("studio_app.py")
STUDIO_LINE = re.compile(r"cairn studio on (http://\S+/)")
# Checkpoints written at once by fill_history. Measured on 2 cores: 8 puts in
# flight write 2,000 checkpoints in 1.6 s, one at a time 3.3 s; UpdateState
# on a graph thread (one call after the other, each a superstep) 8 s.
FILL_CONCURRENCY = 8

T = TypeVar("T")


@dataclass
class Studio:
    """A running `cairn serve --ui-address` and its worker."""

    address: str  # gRPC, host:port
    url: str  # the page, http://127.0.0.1:<port>/
    server: Process
    gates: pathlib.Path
    worker: Process | None = None
    worker_id: str = ""

    def open_gate(self, name: str) -> None:
        """Let studio_app's `live` run waiting on gate `name` go on."""
        (self.gates / name).touch()

    def thread_url(self, thread_id: str) -> str:
        return f"{self.url}#/threads/{quote(thread_id, safe='')}"


def start_studio(directory: pathlib.Path, *options: str) -> Studio:
    """`cairn serve` with the Studio on a free port, on a SQLite file in
    `directory`; once it prints where the Studio is."""
    address = f"127.0.0.1:{free_port()}"
    store = f"sqlite:///{directory / 'studio.db'}"
    server = serve_on(address, store, "--ui-address", "127.0.0.1:0", *options)
    try:
        url = STUDIO_LINE.search(server.wait_for_line("cairn studio on"))
        assert url is not None, server.lines
    except BaseException:
        server.stop()
        raise
    gates = directory / "gates"
    gates.mkdir(exist_ok=True)
    return Studio(address, url.group(1), server, gates)


def start_app_worker(studio: Studio, *extra: str) -> tuple[Process, str]:
    """A worker process serving studio_app.py, connected to `studio`, and
    its worker id."""
    process = Process(
        [sys.executable, str(APP), "--address", studio.address, *extra],
        env={"CAIRN_STUDIO_GATES": str(studio.gates)},
    ).start()
    try:
        line = process.wait_for_line("worker ready")
    except BaseException:
        process.stop()
        raise
    return process, line.split()[2]


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to its end on a loop of its own, in another thread:
    Playwright's sync API keeps a loop running in the tests' thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def cairn_keys_create(name: str, grant: str) -> tuple[str, dict[str, Any]]:
    """`cairn keys create`: the key it prints once, and its access-file entry."""
    done = subprocess.run(
        [str(BIN / "cairn"), "keys", "create", "--name", name, "--grant", grant],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    [key] = [word for word in done.stdout.split() if word.startswith("cairn_")]
    return key, json.loads(done.stdout[done.stdout.index("{") :])


def stream_until(
    address: str,
    target: str,
    input: Any,
    *,
    thread_id: str,
    until: Callable[[RunEvent], bool],
    api_key: str | None = None,
) -> list[RunEvent]:
    """Start a run (recording updates, custom and tasks chunks) and read its
    events until `until(event)` is true; the run goes on without the client.
    Returns the events read."""

    async def read() -> list[RunEvent]:
        seen: list[RunEvent] = []
        async with Client(address, api_key=api_key) as client:
            events = client.stream(
                target,
                input,
                thread_id=thread_id,
                durability="sync",
                stream_mode=["updates", "custom", "tasks"],
            )
            try:
                async for event in events:
                    seen.append(event)
                    if until(event):
                        return seen
            finally:
                await events.aclose()  # type: ignore[attr-defined]
        raise AssertionError(f"the run ended before the awaited event: {seen}")

    return run_async(lambda: asyncio.wait_for(read(), 60))


def fill_history(
    address: str, thread_id: str, count: int, *, api_key: str | None = None
) -> list[str]:
    """Write `count` checkpoints of a LangGraph thread through CairnSaver,
    each the child of the one before, checkpoint i holding
    `{"count": i, "note": "step i"}`. Returns their ids, oldest first."""
    ids = [str(uuid6(clock_seq=i)) for i in range(count)]
    assert ids == sorted(ids), "checkpoint ids must grow with time"

    async def put(saver: CairnSaver, gate: asyncio.Semaphore, index: int) -> None:
        checkpoint = empty_checkpoint()
        version = str(index + 1)
        checkpoint["id"] = ids[index]
        checkpoint["channel_values"] = {"count": index, "note": f"step {index}"}
        checkpoint["channel_versions"] = {"count": version, "note": version}
        checkpoint["updated_channels"] = ["count", "note"]
        parent = ids[index - 1] if index else None
        config: Any = {
            "configurable": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": parent}
        }
        metadata: Any = {"source": "loop", "step": index, "parents": {}}
        async with gate:
            await saver.aput(config, checkpoint, metadata, {"count": version, "note": version})

    async def fill() -> None:
        gate = asyncio.Semaphore(FILL_CONCURRENCY)
        async with CairnSaver(address, api_key=api_key) as saver:
            await asyncio.gather(*(put(saver, gate, index) for index in range(count)))

    run_async(fill)
    return ids
