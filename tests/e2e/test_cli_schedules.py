"""`cairn schedules`: the namespace's schedules as a table, and pause,
resume, trigger and delete from the terminal, against a real server and
worker process."""

from __future__ import annotations

import asyncio
import json
import pathlib
import subprocess

from cairn import Client
from tests.e2e.processes import BIN, free_port, start_server, start_worker, stopping


def cairn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "cairn"), *args], capture_output=True, text=True, timeout=60, check=False
    )


async def test_schedules_list_pause_resume_trigger_delete(tmp_path: pathlib.Path) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    server = start_server(tmp_path / "cli.db", port)
    worker = start_worker(address, tmp_path / "worker.log")
    with stopping(worker, server):
        async with Client(address) as client:
            await client.schedules.create(
                "twenty_steps", 1, cron="0 8 * * MON-FRI", time_zone="Europe/Paris", schedule_id="a"
            )
            await client.schedules.create(
                "twenty_steps", 1, interval=600, schedule_id="b", thread_policy="one_thread"
            )

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return cairn("schedules", *args, "--address", address)

        listed = await asyncio.to_thread(run)
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        assert lines[0].split()[:3] == ["SCHEDULE", "TARGET", "WHEN"]
        assert lines[1].split()[:8] == [
            "a", "twenty_steps", "0", "8", "*", "*", "MON-FRI", "Europe/Paris"
        ]  # fmt: skip
        assert "every 0:10:00" in lines[2] and "schedule-b" in lines[2]

        paused = await asyncio.to_thread(run, "pause", "a")
        assert paused.returncode == 0, paused.stderr
        assert "paused" in paused.stdout.splitlines()[1]

        fired = await asyncio.to_thread(run, "trigger", "a")
        assert fired.returncode == 0, fired.stderr
        assert fired.stdout.startswith("firing trigger-") and " started: run " in fired.stdout

        listed = await asyncio.to_thread(run, "--json")
        [a, _] = json.loads(listed.stdout)
        assert a["paused"] is True
        assert [f["state"] for f in a["recent_firings"]] == ["started"]

        resumed = await asyncio.to_thread(run, "resume", "a")
        assert "paused" not in resumed.stdout.splitlines()[1]
        deleted = await asyncio.to_thread(run, "delete", "a")
        assert deleted.stdout.strip() == "schedule a deleted"

        missing = await asyncio.to_thread(run, "delete", "a")
        assert missing.returncode == 1 and "SCHEDULE_NOT_FOUND" in missing.stdout
        no_id = await asyncio.to_thread(run, "pause")
        assert no_id.returncode == 2 and "needs a schedule id" in no_id.stderr
