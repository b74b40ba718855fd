"""Cost of one step as a thread's history grows, on SQLite and on Postgres.

    .venv/bin/python bench/history.py [--steps 500] [--histories 10,10000]
        [--postgres postgresql://postgres@127.0.0.1:5432/test] [--max-seconds 240]
        [--json results.json]

For each backend and each history length H, it fills a fresh thread with H
checkpoints (each with a pending write and two events, a large "messages"
channel written once and small channels written every step, as a graph
thread looks), then measures `--steps` more steps. One step is what the
runtime commits for a superstep: one checkpoint with the values of the
channels that changed, the task's pending write and two stream events, in one
WriteBatch (the run and the thread status are written when a run starts and
ends, not per step). It reports per step:

- commit: the time `store.commit(step)` takes (median and p90), what a `sync`
  run waits for per step;
- read: the time to read the thread's latest checkpoint with its values and
  writes (what a resume does), and the newest page of its history (10);
- written: bytes the database writes to make the step durable: the WAL
  records Postgres generates (cluster-wide LSN, so median per step), and for
  SQLite the bytes the process passes to write() (WAL frames, plus its
  checkpoints into the main file, amortized in the mean);
- stored: how much the database grows per step (tables and indexes; for
  SQLite the file after a WAL checkpoint).

The flat-cost target: each figure at 10,000 prior checkpoints within 1.2x of
the same figure at 10. The run stops after --max-seconds (default 240).
With --json it also writes the figures per backend and history length, and
the ratios, for bench/run.py's table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import asyncpg

from cairn_server.domain import (
    CheckpointRecord,
    Durability,
    EventRecord,
    PendingWrite,
    RunRecord,
    RunState,
    ThreadRecord,
    ThreadStatus,
)
from cairn_server.ids import new_id
from cairn_server.store import Store, WriteBatch, WriteSet, open_store

FILL_BATCH = 500
WARMUP = 50
STORED_STEPS = 200
MESSAGES = [{"role": "user", "content": "a" * 200, "id": str(i)} for i in range(20)]


class OutOfTime(Exception):
    pass


@dataclass
class Thread:
    """A graph-like thread and the ids its next step needs."""

    thread_id: str
    run: RunRecord
    messages_version: str = ""
    previous: str | None = None
    steps: int = 0
    events: int = 0

    def step(self) -> WriteBatch:
        cp_id = new_id()
        n = self.steps
        first = not self.messages_version
        if first:
            self.messages_version = cp_id
        values: dict[str, object] = {"count": n, "last": {"node": f"n{n % 10}", "ok": True}}
        if first:
            values["messages"] = MESSAGES
        checkpoint = CheckpointRecord(
            thread_id=self.thread_id,
            checkpoint_ns="",
            checkpoint_id=cp_id,
            parent_checkpoint_id=self.previous,
            channel_values=values,
            channel_versions={"messages": self.messages_version, "count": cp_id, "last": cp_id},
            metadata={"source": "loop", "step": n, "writes": {f"n{n % 10}": {"count": n}}},
            created_at=time.time(),
        )
        task_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.thread_id}/{n}"))
        events = [
            EventRecord(
                self.run.run_id,
                self.events + i,
                time.time(),
                "chunk",
                {"mode": "updates", "data": {f"n{n % 10}": {"count": n}}, "namespace": []},
            )
            for i in (1, 2)
        ]
        self.previous, self.steps, self.events = cp_id, n + 1, self.events + 2
        return WriteBatch(
            checkpoints=[checkpoint],
            writes=[
                WriteSet(self.thread_id, "", cp_id, [PendingWrite(task_id, 0, "count", n, "~0")])
            ],
            events=events,
        )


def new_thread() -> Thread:
    thread_id = new_id()
    run = RunRecord(
        run_id=new_id(),
        thread_id=thread_id,
        target="graph",
        state=RunState.RUNNING,
        durability=Durability.SYNC,
        created_at=time.time(),
        updated_at=time.time(),
        checkpoint_id="",
    )
    return Thread(thread_id, run)


@dataclass
class Figures:
    commit: list[float] = field(default_factory=list)
    read_latest: list[float] = field(default_factory=list)
    read_history: list[float] = field(default_factory=list)
    written: list[int] = field(default_factory=list)
    stored: float = 0.0


class Backend:
    name = ""

    def __init__(self) -> None:
        self.url = ""

    @contextlib.asynccontextmanager
    async def database(self) -> AsyncIterator[str]:
        yield ""

    async def written(self) -> int:
        raise NotImplementedError

    async def stored(self) -> int:
        raise NotImplementedError


class Sqlite(Backend):
    name = "sqlite"

    @contextlib.asynccontextmanager
    async def database(self) -> AsyncIterator[str]:
        with tempfile.TemporaryDirectory() as tmp:
            self.path = pathlib.Path(tmp, "bench.db")
            self.url = f"sqlite:///{self.path}"
            yield self.url

    async def written(self) -> int:
        return _written_by_this_process()

    async def stored(self) -> int:
        with contextlib.closing(sqlite3.connect(self.path)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return self.path.stat().st_size


def _written_by_this_process() -> int:
    """wchar: the bytes this process handed to write(); the store's writer
    thread is the only writer while a step is measured."""
    for line in pathlib.Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("no wchar in /proc/self/io")


class Postgres(Backend):
    name = "postgres"

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url
        self.schema = ""
        self.conn: asyncpg.Connection | None = None

    @contextlib.asynccontextmanager
    async def database(self) -> AsyncIterator[str]:
        self.schema = f"cairn_bench_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(self.base_url, timeout=10)
        self.conn = conn
        await conn.execute(f'CREATE SCHEMA "{self.schema}"')
        try:
            self.url = f"{self.base_url}?search_path={self.schema}"
            yield self.url
        finally:
            await conn.execute(f'DROP SCHEMA "{self.schema}" CASCADE')
            await conn.close()

    async def written(self) -> int:
        assert self.conn is not None
        return int(
            await self.conn.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')")
        )

    async def stored(self) -> int:
        assert self.conn is not None
        return int(
            await self.conn.fetchval(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class AS c"
                " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
                " WHERE n.nspname = $1 AND c.relkind = 'r'",
                self.schema,
            )
        )


async def fill(store: Store, thread: Thread, checkpoints: int, check: Callable[[], None]) -> None:
    """The thread, a running run on it, and `checkpoints` steps."""
    now = time.time()
    await store.commit(
        WriteBatch(
            threads=[ThreadRecord(thread.thread_id, now, now, status=ThreadStatus.BUSY)],
            runs=[thread.run],
        )
    )
    while thread.steps < checkpoints:
        check()
        batch = WriteBatch()
        for _ in range(min(FILL_BATCH, checkpoints - thread.steps)):
            batch.extend(thread.step())
        await store.commit(batch)


async def step_once(store: Store, backend: Backend, thread: Thread, figures: Figures) -> None:
    batch = thread.step()
    written = await backend.written()
    start = time.perf_counter()
    await store.commit(batch)
    figures.commit.append(time.perf_counter() - start)
    figures.written.append(await backend.written() - written)

    start = time.perf_counter()
    latest = await store.get_checkpoint(thread.thread_id)
    assert latest is not None and len(latest.channel_values["messages"]) == len(MESSAGES)
    await store.get_writes(thread.thread_id, "", latest.checkpoint_id)
    figures.read_latest.append(time.perf_counter() - start)
    start = time.perf_counter()
    await store.list_checkpoints(thread.thread_id, limit=10)
    figures.read_history.append(time.perf_counter() - start)


async def measure(
    backend: Backend, histories: list[int], steps: int, check: Callable[[], None]
) -> list[Figures]:
    """One database holding a thread per history length. Steps alternate
    between the threads, so that whatever else the machine does slows them
    alike; the growth in storage is measured on each thread alone after."""
    async with backend.database() as url:
        store = open_store(url)
        await store.open()
        try:
            threads = [new_thread() for _ in histories]
            for thread, history in zip(threads, histories, strict=True):
                await fill(store, thread, history, check)
            for _ in range(WARMUP):  # warm caches and prepared statements
                for thread in threads:
                    await store.commit(thread.step())
            figures = [Figures() for _ in threads]
            for _ in range(steps):
                check()
                for thread, figure in zip(threads, figures, strict=True):
                    await step_once(store, backend, thread, figure)
            for thread, figure in zip(threads, figures, strict=True):
                check()
                stored = await backend.stored()
                for _ in range(STORED_STEPS):
                    await store.commit(thread.step())
                figure.stored = (await backend.stored() - stored) / STORED_STEPS
        finally:
            await store.close()
    return figures


def p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e3:6.2f} / {p(values, 0.9) * 1e3:6.2f}"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--histories", default="10,10000")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("CAIRN_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test"),
        help="a database to make a scratch schema in ('' to skip Postgres)",
    )
    parser.add_argument("--max-seconds", type=float, default=240.0)
    parser.add_argument("--json", type=pathlib.Path, help="also write the figures here")
    args = parser.parse_args()
    histories = [int(h) for h in args.histories.split(",")]
    deadline = time.monotonic() + args.max_seconds

    def check() -> None:
        if time.monotonic() > deadline:
            raise OutOfTime(f"stopped after {args.max_seconds:g}s (--max-seconds)")

    backends: list[Backend] = [Sqlite()]
    if args.postgres:
        backends.append(Postgres(args.postgres))
    header = (
        f"{'backend':9} {'history':>8} {'commit ms p50/p90':>18} {'latest ms p50/p90':>18}"
        f" {'history ms p50/p90':>19} {'written B p50':>13} {'mean':>7} {'stored B':>9}"
    )
    print(f"{args.steps} steps per row; figures per step", flush=True)
    print(header, flush=True)
    results: dict[tuple[str, int], Figures] = {}
    try:
        for backend in backends:
            figures = await measure(backend, histories, args.steps, check)
            for history, f in zip(histories, figures, strict=True):
                results[backend.name, history] = f
                print(
                    f"{backend.name:9} {history:>8} {ms(f.commit):>18} {ms(f.read_latest):>18}"
                    f" {ms(f.read_history):>19} {statistics.median(f.written):>13.0f}"
                    f" {statistics.mean(f.written):>7.0f} {f.stored:>9.0f}",
                    flush=True,
                )
    except OutOfTime as stop:
        print(stop, file=sys.stderr)
        return 1
    low, high = min(histories), max(histories)
    print(f"\nratio {high} / {low} prior checkpoints (target <= 1.2):")
    all_ratios = {}
    for backend in backends:
        a, b = results[backend.name, low], results[backend.name, high]
        ratios = {
            "commit": statistics.median(b.commit) / statistics.median(a.commit),
            "latest": statistics.median(b.read_latest) / statistics.median(a.read_latest),
            "history": statistics.median(b.read_history) / statistics.median(a.read_history),
            "written": statistics.median(b.written) / max(1, statistics.median(a.written)),
        }
        all_ratios[backend.name] = ratios
        print(f"  {backend.name:9} " + "  ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    if args.json:
        write_json(args.json, args.steps, results, all_ratios)
    return 0


def write_json(
    path: pathlib.Path,
    steps: int,
    results: dict[tuple[str, int], Figures],
    ratios: dict[str, dict[str, float]],
) -> None:
    rows = [
        {
            "store": name,
            "history": history,
            "steps": steps,
            "commit_p50_seconds": statistics.median(f.commit),
            "commit_p90_seconds": p(f.commit, 0.9),
            "read_latest_p50_seconds": statistics.median(f.read_latest),
            "read_history_p50_seconds": statistics.median(f.read_history),
            "written_p50_bytes": statistics.median(f.written),
            "written_mean_bytes": statistics.mean(f.written),
            "stored_bytes": f.stored,
        }
        for (name, history), f in results.items()
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": rows, "ratios": ratios}, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
