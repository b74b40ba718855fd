"""Shipping a large journal costs the server memory only while it ships
(issue 22): a real `cairn serve` process runs, interrupts and resumes a run
whose journal is larger than a Connect message (2,000 results of about 3 KB
of JSON), and its resident size goes back to within a few MiB of what it
was before that run (after a first such run and resume, which warm what
stays: imports, caches, pools)."""

from __future__ import annotations

import asyncio
import pathlib
import time

import pytest

from cairn import Client, Command, RunState, Worker
from tests.api.test_large_journal import PIECES, long_history, piece, runs_of
from tests.e2e.processes import free_port, serve, stopping

MIB = 1024 * 1024
SLACK = 6 * MIB
"""How far above its size before the resume the server may stay."""


def rss(pid: int) -> int:
    """The process's resident set size in bytes (VmRSS)."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


async def settled_rss(pid: int, at_most: int, within: float) -> int:
    """The RSS once it is at most `at_most`, or the last reading when it is
    still above it after `within` seconds (freed memory is given back as the
    server's loop runs its trims)."""
    deadline = time.monotonic() + within
    reading = rss(pid)
    while reading > at_most and time.monotonic() < deadline:
        await asyncio.sleep(0.1)  # polling the observable RSS, not waiting for an event
        reading = rss(pid)
    return reading


async def interrupted_then_resumed(client: Client, thread_id: str, pid: int) -> int:
    """Run long_history to its interrupt, then resume it; the largest RSS
    of the server seen while it resumed."""
    first = await asyncio.wait_for(client.invoke(long_history, PIECES, thread_id=thread_id), 240)
    assert first.state is RunState.INTERRUPTED
    peak = rss(pid)
    resuming = asyncio.ensure_future(
        client.invoke(long_history, Command(resume="go"), thread_id=thread_id)
    )
    while not resuming.done():
        peak = max(peak, rss(pid))
        await asyncio.wait({resuming}, timeout=0.05)
    resumed = resuming.result()
    assert resumed.state is RunState.SUCCEEDED, resumed.error
    assert resumed.output["count"] == PIECES and resumed.output["in_order"]
    return peak


@pytest.mark.timeout(600)
async def test_server_memory_returns_after_resuming_a_large_journal(
    tmp_path: pathlib.Path,
) -> None:
    port = free_port()
    server = serve(f"sqlite:///{tmp_path / 'cairn.db'}", port)
    with stopping(server):
        address = f"127.0.0.1:{port}"
        worker = Worker(address, functions=[piece, long_history])
        running = asyncio.ensure_future(worker.run())
        try:
            await asyncio.wait_for(worker.connected.wait(), 10)
            async with Client(address) as client:
                runs_of.clear()
                # A first run and resume warm what stays (imports, caches,
                # pools); the server's size after it is the one to return to.
                await interrupted_then_resumed(client, "warm-up", server.pid)
                before = rss(server.pid)
                peak = await interrupted_then_resumed(client, "measured", server.pid)
                after = await settled_rss(server.pid, before + SLACK, within=10)
                assert runs_of == {i: 2 for i in range(PIECES)}  # once per thread
        finally:
            await worker.stop(grace=1)
            await asyncio.wait_for(running, 10)
    print(
        f"server RSS before the measured run {before / MIB:.1f} MiB, peak while it resumed"
        f" {peak / MIB:.1f} MiB, after {after / MIB:.1f} MiB"
    )
    assert after <= before + SLACK, (before, peak, after)
