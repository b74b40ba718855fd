"""What every peer runner shares: the CLI, the result JSON, timing, RSS, scratch
Postgres databases and the crash drill.

Runs under bench/.venv-peers (see __init__.py for the contract); imports
nothing from Cairn.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import pathlib
import platform
import select
import signal
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any
from urllib.parse import urlsplit, urlunsplit

WORKLOADS = ("sequential", "concurrent", "crash", "memory")
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
# A child that does not reach its next milestone in this long is killed and the
# invocation fails, so that a hung peer never hangs the harness.
CHILD_TIMEOUT_SECONDS = 120.0


def parse_args(
    systems: tuple[str, ...],
    argv: list[str] | None = None,
    *,
    stores: tuple[str, ...] = ("sqlite", "postgres"),
) -> argparse.Namespace:
    """The runners' command line; `stores` are the --store values the runner
    accepts, the first its default (Restate has only its own)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--system", required=True, choices=systems)
    parser.add_argument("--workload", required=True, choices=WORKLOADS)
    parser.add_argument("--steps", type=int, default=10, help="steps per run (N)")
    parser.add_argument("--runs", type=int, default=20, help="measured runs (R)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="runs in flight at once (C); concurrent workload only, default 32",
    )
    parser.add_argument("--store", choices=stores, default=stores[0])
    parser.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help="an existing database to connect to; the runner creates and drops its own",
    )
    parser.add_argument(
        "--durability",
        choices=("sync", "async", "exit"),
        default="sync",
        help="LangGraph's durability mode; DBOS has only one (a step's output is "
        "committed before the workflow goes on), reported as sync",
    )
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured runs first")
    parser.add_argument("--out", required=True, type=pathlib.Path)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.runs < 1 or args.warmup < 0:
        parser.error("--steps and --runs must be at least 1, --warmup at least 0")
    if args.workload == "crash" and args.steps < 2:
        parser.error("the crash workload needs --steps of at least 2")
    if args.concurrency is None:
        args.concurrency = 32 if args.workload == "concurrent" else 1
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    return args


@dataclass
class Result:
    """The runner's output; `write` renders the contract's JSON."""

    system: str
    store: str
    workload: str
    steps: int
    runs: int
    concurrency: int
    durability: str
    packages: tuple[str, ...]
    run_seconds: list[float] = field(default_factory=list)
    step_latency_seconds: list[float] = field(default_factory=list)
    wall_seconds: float | None = None
    reran_steps: list[int] | None = None
    rss_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def write(self, path: pathlib.Path) -> None:
        body: dict[str, Any] = {
            "system": self.system,
            "store": self.store,
            "workload": self.workload,
            "steps": self.steps,
            "runs": self.runs,
            "concurrency": self.concurrency,
            "durability": self.durability,
            "run_seconds": [round(s, 7) for s in self.run_seconds],
            "step_latency_seconds": [round(s, 7) for s in self.step_latency_seconds],
            "wall_seconds": None if self.wall_seconds is None else round(self.wall_seconds, 6),
            "reran_steps": self.reran_steps,
            "rss_bytes": self.rss_bytes,
            "versions": versions(self.packages),
            "notes": " ".join(self.notes),
        }
        body.update(self.extra)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(body, indent=1) + "\n")
        summary(body)


def summary(body: dict[str, Any]) -> None:
    """One line on stderr for a person; the harness reads the JSON."""
    head = f"{body['system']}/{body['store']} {body['workload']} N={body['steps']} R={body['runs']}"
    runs = sorted(body["run_seconds"])
    line = head
    if body["workload"] in ("sequential", "concurrent") and runs and body["wall_seconds"]:
        median = runs[len(runs) // 2]
        total_steps = body["steps"] * body["runs"]
        line += (
            f" C={body['concurrency']}: median {median * 1000:.1f} ms/run,"
            f" {body['steps'] / median:.0f} steps/s per run,"
            f" {total_steps / body['wall_seconds']:.0f} steps/s overall,"
            f" wall {body['wall_seconds']:.2f} s"
        )
    elif body["workload"] == "crash":
        line += f": reran {body['reran_steps']}"
    elif body["workload"] == "memory" and body["rss_bytes"] is not None:
        line += f": RSS {body['rss_bytes'] / 2**20:.1f} MiB"
    print(line, file=sys.stderr)


def versions(packages: tuple[str, ...]) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def run_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def rss_bytes() -> int:
    """Resident set size of this process, from /proc (Linux)."""
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class StepClock:
    """Start times of each run's steps, to derive the time between consecutive
    step starts. A step calls `mark(run)` first thing."""

    def __init__(self) -> None:
        self.starts: dict[str, list[float]] = {}
        self.enabled = True

    def mark(self, run: str) -> None:
        if self.enabled:
            self.starts.setdefault(run, []).append(time.perf_counter())

    def gaps(self, runs: list[str]) -> list[float]:
        out: list[float] = []
        for run in runs:
            starts = self.starts.get(run, [])
            out.extend(b - a for a, b in itertools.pairwise(starts))
        return out


def measure_sequential(
    run_one: Callable[[str], None], args: argparse.Namespace
) -> tuple[list[float], list[str], float]:
    """R runs one after the other; returns each run's duration, the run ids in
    order, and the wall time of all R."""
    for _ in range(args.warmup):
        run_one(run_id("warmup"))
    keys = [run_id("run") for _ in range(args.runs)]
    durations = []
    began = time.perf_counter()
    for key in keys:
        start = time.perf_counter()
        run_one(key)
        durations.append(time.perf_counter() - start)
    return durations, keys, time.perf_counter() - began


async def measure_concurrent(
    run_one: Callable[[str], Awaitable[None]], args: argparse.Namespace
) -> tuple[list[float], list[str], float]:
    """R runs, at most C in flight; returns each run's duration (from the moment
    it got its slot), the run ids in order, and the wall time of all R."""
    for _ in range(args.warmup):
        await run_one(run_id("warmup"))
    slots = asyncio.Semaphore(args.concurrency)
    keys = [run_id("run") for _ in range(args.runs)]
    durations: dict[str, float] = {}

    async def one(key: str) -> None:
        async with slots:
            start = time.perf_counter()
            await run_one(key)
            durations[key] = time.perf_counter() - start

    start = time.perf_counter()
    await asyncio.gather(*(one(key) for key in keys))
    wall = time.perf_counter() - start
    return [durations[key] for key in keys], keys, wall


@contextlib.contextmanager
def scratch_dir() -> Iterator[pathlib.Path]:
    with tempfile.TemporaryDirectory(prefix="cairn-peers-") as tmp:
        yield pathlib.Path(tmp)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@contextlib.contextmanager
def scratch_database(pg_url: str, prefix: str) -> Iterator[str]:
    """A fresh database beside `pg_url`'s, dropped afterwards; yields its URL."""
    import psycopg

    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(pg_url, name)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class StepLog:
    """The crash drill's record of executed steps: each step appends its index
    to a file, and in the first child also to a pipe that the parent reads."""

    def __init__(self) -> None:
        self.path: pathlib.Path | None = None
        self.pipe: int | None = None

    def record(self, index: int) -> None:
        if self.path is None:
            return
        line = f"{index}\n".encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        if self.pipe is not None:
            os.write(self.pipe, line)

    def read(self) -> list[int]:
        assert self.path is not None
        if not self.path.exists():
            return []
        return [int(x) for x in self.path.read_text().split()]


def _fork(body: Callable[[], None]) -> int:
    """Runs `body` in a forked child that exits with 0, or 1 on an exception.
    The parent has only imported modules (no threads, loops or connections), so
    the child starts as a new process would, without paying for the imports."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            body()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


def _read_until(fd: int, done: Callable[[bytes], bool], what: str) -> bytes:
    data = b""
    deadline = time.monotonic() + CHILD_TIMEOUT_SECONDS
    while not done(data):
        remaining = deadline - time.monotonic()
        readable, _, _ = select.select([fd], [], [], max(0.0, remaining))
        if not readable:
            raise TimeoutError(f"no {what} within {CHILD_TIMEOUT_SECONDS} s")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise RuntimeError(f"the child exited before {what}")
        data += chunk
    return data


def _wait(pid: int) -> int:
    """Reaps a child within the timeout (SIGKILL past it); returns its status."""
    deadline = time.monotonic() + CHILD_TIMEOUT_SECONDS
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise TimeoutError(f"child {pid} did not exit within {CHILD_TIMEOUT_SECONDS} s")
        # Only reached when the child was told to stop and is exiting.
        time.sleep(0.005)


@dataclass
class CrashTrial:
    steps_before_kill: int
    reran_steps: int
    recovery_seconds: float
    recovered_output: Any


def crash_trial(
    log: StepLog,
    steps: int,
    start: Callable[[], None],
    recover: Callable[[], Any],
) -> CrashTrial:
    """One crash drill: a child runs `start` (a run of `steps` steps that
    records each finished step in `log`) and is SIGKILLed as soon as step
    steps/2 (1-based) has finished; then a second child runs `recover`, which
    must finish the same run and return its output (JSON-serializable). Counts
    the steps that had finished before the kill and ran again."""
    assert log.path is not None
    kill_after = steps // 2 - 1  # index of the N/2-th step
    read_end, write_end = os.pipe()

    def first() -> None:
        os.close(read_end)
        log.pipe = write_end
        start()

    pid = _fork(first)
    os.close(write_end)
    try:
        _read_until(
            read_end,
            lambda data: f"\n{kill_after}\n".encode() in b"\n" + data,
            f"step {kill_after}",
        )
    finally:
        # The kill itself, and also the way out when the read failed.
        os.kill(pid, signal.SIGKILL)
        os.close(read_end)
        status = _wait(pid)
    if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
        raise RuntimeError(f"the first child was not killed (status {status})")
    before = log.read()

    read_end, write_end = os.pipe()

    def second() -> None:
        os.close(read_end)
        began = time.perf_counter()
        output = recover()
        took = time.perf_counter() - began
        os.write(write_end, json.dumps({"output": output, "seconds": took}).encode() + b"\n")

    pid = _fork(second)
    os.close(write_end)
    try:
        data = _read_until(read_end, lambda data: data.endswith(b"\n"), "the recovered output")
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        raise
    finally:
        os.close(read_end)
        status = _wait(pid)
    if status != 0:
        raise RuntimeError(f"the recovery child failed (status {status})")
    reply = json.loads(data)
    after = log.read()[len(before) :]
    finished = set(before)
    missing = set(range(steps)) - finished - set(after)
    if missing:
        raise RuntimeError(f"steps {sorted(missing)} never ran")
    return CrashTrial(
        steps_before_kill=len(before),
        reran_steps=sum(1 for index in after if index in finished),
        recovery_seconds=reply["seconds"],
        recovered_output=reply["output"],
    )
