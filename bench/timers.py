"""Durable time: how late a sleeping run resumes after its timer is due, and
what a thousand waiting timers cost the server.

    .venv/bin/python bench/timers.py [--store sqlite|postgres] [--runs 100]
        [--sleepers 1000] [--json bench/results/timers.json]

Starts `cairn serve` (on a fresh SQLite file, or a new schema at --pg-url
dropped at the end) and one worker, each a separate process on 127.0.0.1,
both on the wall clock. The worker serves `nap`, an entrypoint that calls
`cairn.sleep_until(due)` and, once the run is woken and replayed past the
sleep, returns the time it got there.

- accuracy: --runs runs whose due times are spread over a second, all
  parked before the first is due; lateness = the time the replayed
  entrypoint passed its sleep minus the due time (it covers the server
  claiming the run, resuming it, dispatching the entrypoint and the replay).
- cost: --sleepers runs parked with one due time; the server's RSS before
  (after a warm-up) and while they wait, its CPU over 5 s of waiting, and,
  once due, the time until every one of them succeeded; then the RSS with a
  second crowd as large waiting (cancelled at the end), which grows again
  only if the server keeps memory per sleeping run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from cairn_runner import Process, cpu_seconds, free_port, fresh_store, rss_bytes

import cairn
from cairn import Client, Worker, entrypoint

BIN = pathlib.Path(sys.executable).parent


@entrypoint()
def nap(due: float) -> float:
    cairn.sleep_until(datetime.fromtimestamp(due, UTC))
    return time.time()


async def serve_worker(address: str) -> None:
    worker = Worker(address, functions=[nap], max_entrypoints=256)
    runner = asyncio.ensure_future(worker.run())
    await worker.connected.wait()
    print("worker ready", flush=True)
    await runner


async def start_all(client: Client, dues: list[float], prefix: str) -> list[str]:
    """Start one run per due time (64 at a time); returns their ids once each
    is parked (its entrypoint reported the sleep)."""
    gate = asyncio.Semaphore(64)

    async def start(n: int, due: float) -> str:
        async with gate:
            events = client.stream("nap", due, thread_id=f"{prefix}-{n}", stream_mode="updates")
            try:
                async for event in events:
                    if event.run is not None and event.run.waiting:
                        return event.run.run_id
            finally:
                await events.aclose()
        raise RuntimeError("a run ended before it slept")

    return list(await asyncio.gather(*(start(n, due) for n, due in enumerate(dues))))


async def outputs(client: Client, run_ids: list[str]) -> list[float]:
    gate = asyncio.Semaphore(64)

    async def one(run_id: str) -> float:
        async with gate:
            async for _ in client.join(run_id):
                pass
            run = await client.get_run(run_id)
            if run.state.value != "succeeded":
                raise RuntimeError(f"run {run_id} is {run.state.value}")
            return float(run.output)

    return list(await asyncio.gather(*(one(r) for r in run_ids)))


def spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered) * 1e3, 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1e3, 2),
        "max_ms": round(ordered[-1] * 1e3, 2),
        "min_ms": round(ordered[0] * 1e3, 2),
    }


async def measure(address: str, server: Process, args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {}
    async with Client(address) as client:
        # Warm-up: a few short sleeps through every path once.
        warm = await start_all(client, [time.time() + 0.5] * 20, "warm")
        await outputs(client, warm)
        # Accuracy: due times spread over a second, after every run parked.
        first_due = time.time() + 3 + args.runs * 0.02
        dues = [first_due + n / args.runs for n in range(args.runs)]
        run_ids = await start_all(client, dues, "accuracy")
        assert time.time() < first_due, "starting the runs took longer than their lead"
        woke = await outputs(client, run_ids)
        report["accuracy"] = spread([w - d for w, d in zip(woke, dues, strict=True)])
        # Cost of waiting timers.
        baseline = rss_bytes(server.pid)
        lead = 20 + args.sleepers * 0.01
        due = time.time() + lead
        started = time.perf_counter()
        sleepers = await start_all(client, [due] * args.sleepers, "sleeper")
        parked_in = time.perf_counter() - started
        waiting_rss = rss_bytes(server.pid)
        cpu_before = cpu_seconds(server.pid)
        await asyncio.sleep(5)
        idle_cpu = cpu_seconds(server.pid) - cpu_before
        if time.time() >= due:
            raise RuntimeError("the sleepers were due before they were measured: raise the lead")
        await asyncio.sleep(due - time.time())
        woke = await outputs(client, sleepers)
        all_done = time.time() - due
        # A second crowd: memory a server kept per sleeping run would grow
        # again; what the allocator kept from the first one does not.
        again = await start_all(client, [time.time() + 3600] * args.sleepers, "again")
        second_rss = rss_bytes(server.pid)
        for run_id in again:
            await client.cancel_run(run_id)
        report["sleepers"] = {
            "count": args.sleepers,
            "parked_in_s": round(parked_in, 2),
            "rss_baseline_mib": round(baseline / 2**20, 1),
            "rss_waiting_mib": round(waiting_rss / 2**20, 1),
            "rss_per_sleeper_bytes": round((waiting_rss - baseline) / args.sleepers),
            "rss_second_crowd_waiting_mib": round(second_rss / 2**20, 1),
            "server_cpu_s_over_5s_waiting": round(idle_cpu, 3),
            "lateness": spread([w - due for w in woke]),
            "all_woken_and_done_s": round(all_done, 2),
        }
    return report


async def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "store": args.store,
        "runs": args.runs,
        "python": platform.python_version(),
        "cores": os.cpu_count(),
    }
    async with fresh_store(args) as (url, versions):
        report["versions"] = versions
        address = f"127.0.0.1:{free_port()}"
        command = [str(BIN / "cairn"), "serve", "--address", address, "--store", url]
        server = Process([*command, "--log-level", "warning"]).start()
        worker = None
        try:
            server.wait_for_line("cairn serving on")
            script = [sys.executable, __file__, "--worker", address]
            worker = Process(script).start()
            worker.wait_for_line("worker ready")
            report.update(await measure(address, server, args))
        finally:
            if worker is not None:
                worker.stop()
            server.stop()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--sleepers", type=int, default=1000)
    parser.add_argument("--json", type=pathlib.Path)
    parser.add_argument("--worker", metavar="ADDRESS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(serve_worker(args.worker))
        return 0
    report = asyncio.run(run(args))
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
