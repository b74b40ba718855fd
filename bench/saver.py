"""Per-call latency of LangGraph checkpointers: Cairn's CairnSaver against a
real `cairn serve`, and LangGraph's own SQLite savers for reference.

    .venv/bin/python bench/saver.py [--calls 500] [--warmup 50]
        [--json bench/results/saver.json] [--max-seconds 60]

Starts `cairn serve` on a fresh SQLite file as a separate process on
127.0.0.1, then drives four savers, each on its own thread: CairnSaver sync
and async (over gRPC to that server), and LangGraph's SqliteSaver and
AsyncSqliteSaver in this process on other fresh files. The savers take
turns, `--round` steps each, as bench/history.py alternates its threads, so
that whatever else the machine does slows them alike. Each saver does
`--warmup` and then `--calls` measured steps of what a graph's step asks of
its checkpointer:

- put: a checkpoint with the values of the channels that changed (a large
  "messages" channel written in the first step only, two small channels in
  every step), with its parent;
- put_writes: one task's two pending writes on that checkpoint;
- get_tuple: the thread's latest checkpoint with its values and writes (what a
  resume reads).

It prints p50, p99 and mean per call and calls per second (1 / mean) as a
markdown table, and writes the same figures as JSON, with the floor that gRPC
sets: an empty unary call (grpc.health.v1 Check) to the same server. The
savers run with their defaults: the Cairn server's SQLite is WAL with
synchronous=NORMAL, LangGraph's SqliteSaver is WAL with SQLite's default
synchronous=FULL. The run stops after --max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import platform
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from cairn.langgraph import CairnSaver

ROOT = pathlib.Path(__file__).resolve().parents[1]
OPS = ("put", "put_writes", "get_tuple")
MESSAGES = [{"role": "user", "content": "a" * 200, "id": str(i)} for i in range(20)]


class OutOfTime(Exception):
    pass


@dataclass
class Steps:
    """A thread's next checkpoint, as LangGraph's loop would make it."""

    saver: BaseCheckpointSaver[Any]
    thread_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    parent: Any = None
    versions: dict[str, Any] = field(default_factory=dict)
    step: int = 0

    def __post_init__(self) -> None:
        self.parent = self.config()

    def config(self) -> Any:
        return {"configurable": {"thread_id": self.thread_id, "checkpoint_ns": ""}}

    def next(self) -> tuple[Any, Any, Any, Any]:
        n = self.step
        changed = ["count", "last"] + (["messages"] if n == 0 else [])
        for channel in changed:
            self.versions[channel] = self.saver.get_next_version(self.versions.get(channel), None)
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {
            "messages": MESSAGES,
            "count": n,
            "last": {"node": f"n{n % 10}", "ok": True},
        }
        checkpoint["channel_versions"] = dict(self.versions)
        metadata: Any = {"source": "loop", "step": n, "parents": {}}
        self.step += 1
        return self.parent, checkpoint, metadata, {c: self.versions[c] for c in changed}

    def writes(self) -> list[tuple[str, Any]]:
        return [("count", self.step), ("last", {"node": "next", "ok": True})]


def check_read(found: Any) -> None:
    assert found is not None and len(found.checkpoint["channel_values"]["messages"]) == 20
    assert len(found.pending_writes) == 2


class Runner:
    """One saver on its own thread; `run(n)` does n steps and keeps the
    timings of those after the warm-up."""

    def __init__(self, name: str, saver: BaseCheckpointSaver[Any], *, aio: bool) -> None:
        self.name = name
        self.saver = saver
        self.aio = aio
        self.steps = Steps(saver)
        self.done = 0
        self.calls: dict[str, list[float]] = {op: [] for op in OPS}

    async def run(self, n: int, warmup: int) -> None:
        saver, steps, clock = self.saver, self.steps, time.perf_counter
        for _ in range(n):
            parent, checkpoint, metadata, new_versions = steps.next()
            task_id = str(uuid.uuid4())
            if self.aio:
                start = clock()
                stored = await saver.aput(parent, checkpoint, metadata, new_versions)
                put = clock()
                await saver.aput_writes(stored, steps.writes(), task_id, "~__pregel_pull, node")
                put_writes = clock()
                found = await saver.aget_tuple(steps.config())
                get_tuple = clock()
            else:
                start = clock()
                stored = saver.put(parent, checkpoint, metadata, new_versions)
                put = clock()
                saver.put_writes(stored, steps.writes(), task_id, "~__pregel_pull, node")
                put_writes = clock()
                found = saver.get_tuple(steps.config())
                get_tuple = clock()
            check_read(found)
            steps.parent = stored
            self.done += 1
            if self.done > warmup:
                self.calls["put"].append(put - start)
                self.calls["put_writes"].append(put_writes - put)
                self.calls["get_tuple"].append(get_tuple - put_writes)


async def measure(address: str, tmp: pathlib.Path, args: argparse.Namespace) -> list[Runner]:
    """Every saver in rounds of --round steps, one saver after the other, so
    that whatever else the machine does slows them alike. The sync savers
    block this loop while they run, and nothing else runs on it."""
    deadline = time.monotonic() + args.max_seconds
    with (
        CairnSaver(address) as cairn_sync,
        contextlib.closing(sqlite3.connect(tmp / "sync.db", check_same_thread=False)) as conn,
    ):
        async with (
            CairnSaver(address) as cairn_async,
            AsyncSqliteSaver.from_conn_string(str(tmp / "async.db")) as sqlite_async,
        ):
            runners = [
                Runner("CairnSaver sync (gRPC)", cairn_sync, aio=False),
                Runner("CairnSaver async (gRPC)", cairn_async, aio=True),
                Runner("SqliteSaver (in-process)", SqliteSaver(conn), aio=False),
                Runner("AsyncSqliteSaver (in-process)", sqlite_async, aio=True),
            ]
            total = args.warmup + args.calls
            while runners[0].done < total:
                if time.monotonic() > deadline:
                    raise OutOfTime(f"stopped after {args.max_seconds:g}s (--max-seconds)")
                n = min(args.round, total - runners[0].done)
                for runner in runners:
                    await runner.run(n, args.warmup)
    return runners


def round_trips(address: str, calls: int) -> list[float]:
    """Empty unary calls to the server: what any CairnSaver call costs at least."""
    with grpc.insecure_channel(address) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        request = health_pb2.HealthCheckRequest()
        times = []
        for i in range(calls + 50):
            start = time.perf_counter()
            check(request)
            if i >= 50:
                times.append(time.perf_counter() - start)
    return times


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def cairn_serve(store: str) -> Iterator[str]:
    """A `cairn serve` process on 127.0.0.1 over the store URL `store`,
    stopped by its PID."""
    address = f"127.0.0.1:{free_port()}"
    cairn = pathlib.Path(sys.executable).with_name("cairn")
    server = subprocess.Popen(
        [
            *(str(cairn), "serve", "--address", address),
            *("--store", store, "--log-level", "warning"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        for line in server.stdout:
            if "cairn serving on" in line:
                break
        else:
            raise RuntimeError("cairn serve exited before serving")
        yield address
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGTERM)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(server.pid, signal.SIGKILL)
                server.wait(10)


def figures(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    mean = statistics.fmean(ordered)
    return {
        "p50_ms": round(statistics.median(ordered) * 1e3, 4),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e3, 4),
        "mean_ms": round(mean * 1e3, 4),
        "calls_per_s": round(1 / mean, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="measured calls per saver and op")
    parser.add_argument("--warmup", type=int, default=50, help="steps first, not measured")
    parser.add_argument("--round", type=int, default=50, help="steps per saver per round")
    parser.add_argument("--json", type=pathlib.Path, default=ROOT / "bench/results/saver.json")
    parser.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args()
    began = time.monotonic()
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            cairn_serve(f"sqlite:///{pathlib.Path(tmp, 'cairn.db')}") as address,
        ):
            runners = asyncio.run(measure(address, pathlib.Path(tmp), args))
            floor = figures(round_trips(address, args.calls))
    except OutOfTime as stop:
        print(stop, file=sys.stderr)
        return 1
    results = {runner.name: runner.calls for runner in runners}

    rows = [
        {"saver": saver, "op": op, **figures(calls[op])}
        for saver, calls in results.items()
        for op in OPS
    ]
    print(
        f"{args.calls} calls per row after {args.warmup} warm-up steps,"
        f" the savers taking turns {args.round} steps at a time\n"
    )
    print("| saver | op | p50 ms | p99 ms | mean ms | calls/s |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['saver']} | {row['op']} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f}"
            f" | {row['mean_ms']:.3f} | {row['calls_per_s']:.0f} |"
        )
    print(
        f"\ngRPC floor, an empty unary call to the same server: p50 {floor['p50_ms']:.3f} ms,"
        f" p99 {floor['p99_ms']:.3f} ms, mean {floor['mean_ms']:.3f} ms"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "bench": "saver",
        "calls": args.calls,
        "warmup": args.warmup,
        "round": args.round,
        "seconds": round(time.monotonic() - began, 1),
        "commit": subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "grpcio": grpc.__version__,
        },
        "rows": rows,
        "grpc_empty_call": floor,
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
