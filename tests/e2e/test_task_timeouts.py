"""A worker whose task goes silent loses it after the task's heartbeat
timeout, and the run completes on another worker (issue 15, item 5)."""

from __future__ import annotations

import asyncio
import pathlib
import sys

from cairn import Client, RunState
from tests.e2e.processes import Process, free_port, start_server, stopping

TIMEOUTS_APP = pathlib.Path(__file__).with_name("timeouts_app.py")


def start_timeouts_worker(address: str, *extra: str) -> Process:
    process = Process([sys.executable, str(TIMEOUTS_APP), "--address", address, *extra]).start()
    process.wait_for_line("worker ready")
    return process


async def test_a_silent_worker_loses_its_task_to_another_worker(tmp_path: pathlib.Path) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    server = start_server(tmp_path / "cairn.db", port)
    silent = start_timeouts_worker(address, "--hang")
    healthy: Process | None = None
    with stopping(silent, server):
        async with Client(address) as client:
            starts: list[dict[str, int]] = []
            final = None

            async def follow() -> None:
                nonlocal healthy, final
                async for event in client.stream(
                    "crawl_site", 5, thread_id="site", stream_mode="custom"
                ):
                    if event.mode == "custom":
                        starts.append(event.data)
                        if healthy is None:
                            # The silent worker holds the task: only now does
                            # another worker connect.
                            assert event.data["crawl_on"] == silent.pid
                            healthy = start_timeouts_worker(address)
                    elif event.run is not None:
                        final = event.run

            try:
                await asyncio.wait_for(follow(), 60)
            finally:
                if healthy is not None:
                    healthy.stop()
    assert healthy is not None and final is not None
    assert final.state is RunState.SUCCEEDED
    # Done by the other worker, from the progress the silent one heartbeat.
    assert final.output == {"pages": 5, "from": 2, "pid": healthy.pid}
    assert starts[0] == {"crawl_on": silent.pid, "from": 0}
    assert starts[-1] == {"crawl_on": healthy.pid, "from": 2}
