"""Cairn under the peer runners' contract (bench/peers): one workload per call,
one JSON file out.

    .venv/bin/python bench/cairn_runner.py --system cairn --workload sequential \\
        --steps 10 --runs 200 [--concurrency 32] [--durability sync|async|exit] \\
        [--store sqlite|postgres] [--pg-url URL] [--warmup 1] --out result.json

Each call starts `cairn serve` on a fresh store (a SQLite file in a temporary
directory, or a new schema in the database at --pg-url, dropped at the end) and
one worker process serving this file's functions, both on 127.0.0.1; this
process drives the runs with the Python `Client`. Every process it starts is
stopped by its PID when it ends, also on errors and on SIGTERM; their PIDs are
written to `<out>.pids` while they run, so that bench/run.py can stop them if
this process itself has to be killed.

Systems, as the peers' `langgraph-functional` and `langgraph-graph`:

- cairn: the functional API, an entrypoint calling a trivial task N times;
- cairn-graph: a StateGraph chain of N nodes, one superstep (and checkpoint) each.

Workloads (--warmup unmeasured runs first; each run on a new thread):

- sequential: --runs runs one after the other.
- concurrent: --runs runs with --concurrency of them in flight at once.
  `step_latency_seconds`, in both, is the time between consecutive step
  starts within a run, as the worker's clock saw them.
- crash (cairn): per run, each step appends its index to a file as it starts;
  once step N/2 (1-based) has, the server gets SIGKILL, is started again on
  the same store and address, and the run recovers by itself (the worker
  reconnects). `reran_steps` per run, as the peers count: steps that ran
  before the kill and ran again. The last of them was the step in flight
  (whose result the kill may have lost), so `finished_reran_steps` counts the
  others: steps whose result the workflow had already received.
  `run_seconds`: from the kill to the run's end, the restart included.
  With durability exit nothing is stored before the run ends, so the
  restarted server fails the run (RunLost): such runs are listed in
  `lost_runs` instead.
- memory (cairn): server VmRSS (/proc/PID/status) after warm-up
  (`rss_baseline_bytes`), with --runs runs (1,000) waiting on an interrupt
  after their N steps (`rss_bytes`), and with --concurrency runs (256) in
  flight at once, each holding a task open until all have started
  (`rss_in_flight_bytes`).

`cpu_seconds`: CPU time spent during the measured runs (after warm-up) by
the server, the worker, this client and, on Postgres, the database's
processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import itertools
import json
import os
import pathlib
import platform
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict
from urllib.parse import parse_qsl, urlencode, urlsplit

from cairn import (
    START,
    Client,
    CompiledStateGraph,
    RunState,
    StateGraph,
    Worker,
    entrypoint,
    interrupt,
    task,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(sys.executable).parent
SYSTEMS = ("cairn", "cairn-graph")
WORKLOADS = ("sequential", "concurrent", "crash", "memory")
TIMEOUT = 120.0  # the longest any single wait may take

# --- the worker's functions (this file, run with --worker) -------------------------------

STARTS: dict[str, list[float]] = {}  # run key -> perf_counter() at each step's start
LOG: pathlib.Path | None = None  # crash: each step appends "<run> <index>"
RELEASE = threading.Event()  # memory: opens every gate at once


def started(run: str, index: int) -> None:
    if not run.startswith("warmup"):
        STARTS.setdefault(run, []).append(time.perf_counter())
    if LOG is not None:
        fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{run} {index}\n".encode())
        finally:
            os.close(fd)


@task
def step(index: int, run: str) -> dict[str, Any]:
    started(run, index)
    return {"index": index, "ok": True}


@entrypoint()
def chain(inputs: dict[str, Any]) -> dict[str, Any]:
    done = 0
    for index in range(inputs["n"]):
        done += step(index, inputs["run"]).result()["ok"]
    if inputs["wait"]:
        return {"steps": done, "answer": interrupt({"run": inputs["run"]})}
    return {"steps": done}


@task
def gate(run: str) -> str:
    """Holds the task open until the runner releases every gate at once."""
    os.write(1, f"gate {run}\n".encode())  # one write: lines from many threads stay whole
    if not RELEASE.wait(TIMEOUT):
        raise TimeoutError("the runner never released the gates")
    return run


@entrypoint()
def held(run: str) -> str:
    return gate(run).result()


class Count(TypedDict):
    run: str
    count: int
    answer: NotRequired[str]


def node(index: int) -> Callable[[Count], dict[str, int]]:
    def increment(state: Count) -> dict[str, int]:
        started(state["run"], index)
        return {"count": state["count"] + 1}

    return increment


def build_graph(nodes: int) -> CompiledStateGraph:
    builder = StateGraph(Count)
    names = [f"step_{index}" for index in range(nodes)]
    for index, name in enumerate(names):
        builder.add_node(name, node(index))
    builder.add_edge(START, names[0])
    for left, right in itertools.pairwise(names):
        builder.add_edge(left, right)
    return builder.compile(name="chain_graph")


async def serve_worker(args: argparse.Namespace) -> None:
    """Worker.run_sync, plus what the runner needs: a line once connected, a
    gate release on stdin, and the step clock written out at the end."""
    global LOG
    LOG = pathlib.Path(args.log) if args.log else None
    worker = Worker(
        args.worker,
        functions=[step, chain, gate, held, build_graph(args.graph_nodes)],
        max_concurrency=args.task_slots,
        max_entrypoints=args.entrypoint_slots,
        reconnect_max_interval=0.5,
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: asyncio.ensure_future(worker.stop(1.0)))
    # A line on stdin releases the gates (memory workload).
    threading.Thread(target=lambda: (sys.stdin.readline(), RELEASE.set()), daemon=True).start()
    runner = asyncio.ensure_future(worker.run())
    await worker.connected.wait()
    print("worker ready", flush=True)
    await runner
    if args.clock:
        with open(args.clock, "w") as handle:  # noqa: ASYNC230 (the worker has stopped)
            json.dump(STARTS, handle)


# --- processes --------------------------------------------------------------------------------


@dataclass
class Process:
    """A child process whose stdout lines are collected as they arrive."""

    args: list[str]
    popen: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> Process:
        self.popen = subprocess.Popen(
            self.args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        threading.Thread(target=self._pump, daemon=True).start()
        return self

    def _pump(self) -> None:
        assert self.popen is not None and self.popen.stdout is not None
        for line in self.popen.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_until(self, done: Callable[[list[str]], bool], what: str) -> None:
        with self.changed:
            ok = self.changed.wait_for(lambda: done(self.lines) or not self.alive(), TIMEOUT)
            if ok and done(self.lines):
                return
        tail = "\n".join(self.lines[-10:])
        raise RuntimeError(f"{self.args[:2]} did not {what} ({len(self.lines)} lines):\n{tail}")

    def wait_for_line(self, needle: str) -> None:
        self.wait_until(lambda lines: any(needle in line for line in lines), f"print {needle!r}")

    def send_line(self, line: str) -> None:
        assert self.popen is not None and self.popen.stdin is not None
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(TIMEOUT)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `grace` seconds."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                assert self.popen is not None
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill()


def rss_bytes(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (its children excluded)."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU time of this machine's PostgreSQL processes (postmaster, backends
    and background workers) that are running now: the database's share of a
    measurement, as nothing else uses it meanwhile."""
    total = 0.0
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() == "postgres":
                total += cpu_seconds(int(proc.name))
        except (FileNotFoundError, ProcessLookupError):  # it ended meanwhile
            continue
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Stack:
    """`cairn serve` and one worker on 127.0.0.1."""

    def __init__(self, store_url: str, args: argparse.Namespace, tmp: pathlib.Path) -> None:
        self.store_url = store_url
        self.address = f"127.0.0.1:{free_port()}"
        self.args = args
        out = pathlib.Path(args.out)
        self.pids = out.with_name(out.name + ".pids")
        self.clock = tmp / "starts.json"
        self.log = tmp / "steps.log" if args.workload == "crash" else None
        self.server: Process | None = None
        self.worker: Process | None = None
        self.cpu_before: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def _record_pids(self) -> None:
        alive = [p.pid for p in (self.server, self.worker) if p is not None and p.alive()]
        self.pids.write_text("".join(f"{pid}\n" for pid in alive))

    def start_server(self) -> None:
        # A restart keeps its replica id, as the README advises, so that it
        # takes its runs back at once instead of after their lease expires.
        serve = ["serve", "--address", self.address, "--store", self.store_url]
        serve += ["--replica-id", "bench"]
        self.server = Process([str(BIN / "cairn"), *serve, "--log-level", "warning"]).start()
        self._record_pids()
        self.server.wait_for_line("cairn serving on")

    def start_worker(self) -> None:
        memory = self.args.workload == "memory"
        entrypoints = max(256, self.args.concurrency) + 16
        self.worker = Process(
            [sys.executable, __file__, "--worker", self.address, "--clock", str(self.clock)]
            + ["--graph-nodes", str(self.args.steps)]
            + ["--task-slots", str(entrypoints if memory else 16)]
            + ["--entrypoint-slots", str(entrypoints)]
            + (["--log", str(self.log)] if self.log else [])
        ).start()
        self._record_pids()
        self.worker.wait_for_line("worker ready")

    def kill_server(self) -> None:
        assert self.server is not None
        self.server.kill()
        self._record_pids()

    def mark(self) -> None:
        """Count CPU time from here (after warm-up)."""
        self.cpu_before = self._cpu()

    def _cpu(self) -> dict[str, float]:
        times = os.times()
        cpu = {"client": times.user + times.system}
        for name, process in (("server", self.server), ("worker", self.worker)):
            if process is not None and process.alive():
                cpu[name] = cpu_seconds(process.pid)
        if self.args.store == "postgres":
            cpu["postgres"] = postgres_cpu_seconds()
        return cpu

    def measure_cpu(self) -> None:
        now = self._cpu()
        self.cpu = {k: round(v - self.cpu_before.get(k, 0.0), 3) for k, v in now.items()}

    def stop(self) -> None:
        for process in (self.worker, self.server):
            if process is not None:
                process.stop()
        self.pids.unlink(missing_ok=True)

    def step_gaps(self, keys: list[str]) -> list[float]:
        """Time between consecutive step starts within each run (the worker
        writes its clock when it stops)."""
        if not self.clock.exists():
            return []
        starts = json.loads(self.clock.read_text())
        gaps: list[float] = []
        for key in keys:
            times = starts.get(key, [])
            gaps.extend(b - a for a, b in itertools.pairwise(times))
        return gaps


# --- stores -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def fresh_store(args: argparse.Namespace) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """A store URL nobody used, and the database's version."""
    if args.store == "sqlite":
        import sqlite3

        with tempfile.TemporaryDirectory(prefix="cairn-bench-") as tmp:
            yield f"sqlite:///{tmp}/bench.db", {"sqlite": sqlite3.sqlite_version}
        return
    import asyncpg

    parts = urlsplit(args.pg_url)
    base = parts._replace(query="").geturl()
    schema = f"cairn_bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(base, timeout=10)
    try:
        version = str(await conn.fetchval("SHOW server_version"))
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            query = urlencode([*parse_qsl(parts.query), ("search_path", schema)])
            yield parts._replace(query=query).geturl(), {"postgres": version}
        finally:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()


# --- workloads --------------------------------------------------------------------------------


def run_key(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class App:
    """The system's target, its input and the check of its output."""

    def __init__(self, client: Client, args: argparse.Namespace) -> None:
        self.client = client
        self.args = args
        self.graph = args.system == "cairn-graph"

    async def invoke(self, run: str, *, wait: bool = False) -> Any:
        args = self.args
        if self.graph:
            target, value = "chain_graph", {"run": run, "count": 0}
        else:
            target, value = "chain", {"n": args.steps, "run": run, "wait": wait}
        result = await self.client.invoke(
            target,
            value,
            thread_id=run,
            durability=args.durability,
            recursion_limit=args.steps + 10,
        )
        if wait:
            assert result.state is RunState.INTERRUPTED, result
        else:
            done = result.output["count" if self.graph else "steps"]
            assert done == args.steps, result
        return result


async def sequential(app: App, args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    for _ in range(args.warmup):
        await app.invoke(run_key("warmup"))
    stack.mark()
    keys = [run_key("run") for _ in range(args.runs)]
    times = []
    wall = time.perf_counter()
    for key in keys:
        start = time.perf_counter()
        await app.invoke(key)
        times.append(time.perf_counter() - start)
    return {"run_seconds": times, "wall_seconds": time.perf_counter() - wall, "keys": keys}


async def concurrent(app: App, args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    for _ in range(args.warmup):
        await app.invoke(run_key("warmup"))
    slots = asyncio.Semaphore(args.concurrency)
    keys = [run_key("run") for _ in range(args.runs)]
    times: dict[str, float] = {}

    async def one(key: str) -> None:
        async with slots:
            start = time.perf_counter()
            await app.invoke(key)
            times[key] = time.perf_counter() - start

    stack.mark()
    wall = time.perf_counter()
    await asyncio.gather(*(one(key) for key in keys))
    return {
        "run_seconds": [times[key] for key in keys],
        "wall_seconds": time.perf_counter() - wall,
        "keys": keys,
    }


class FileWatch:
    """Waits until a file has a given line, woken by inotify (Linux): no polling."""

    IN_MODIFY = 0x2

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        path.touch()
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_CLOEXEC)
        if self.fd < 0 or libc.inotify_add_watch(self.fd, bytes(path), self.IN_MODIFY) < 0:
            raise OSError(ctypes.get_errno(), "inotify")

    def lines(self) -> list[str]:
        return self.path.read_text().splitlines()

    def wait_for(self, line: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while line not in self.lines():
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise TimeoutError(f"{self.path} never got {line!r}")
            os.read(self.fd, 4096)  # drain the events; the file is read again above

    def close(self) -> None:
        os.close(self.fd)


async def crash(app: App, args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    assert stack.log is not None and not app.graph
    kill_after = args.steps // 2 - 1  # the index of step N/2
    watch = FileWatch(stack.log)
    recovery: list[float] = []
    reran: list[int] = []
    finished_reran: list[int] = []
    before_kill: list[int] = []
    lost: list[str] = []
    stack.mark()
    wall = time.perf_counter()
    try:
        for _ in range(args.runs):
            key = run_key("crash")
            async with Client(stack.address) as client:
                first = asyncio.ensure_future(App(client, args).invoke(key))
                await asyncio.to_thread(watch.wait_for, f"{key} {kill_after}")
                killed = time.perf_counter()
                stack.kill_server()
                first.cancel()  # its server is gone; the run is joined below
                with contextlib.suppress(BaseException):
                    await first
            before = [int(line.split()[1]) for line in watch.lines() if line.startswith(key)]
            stack.start_server()
            async with Client(stack.address) as client:
                (run,) = await client.list_runs(key, limit=1)
                final = run
                if final.state not in (RunState.SUCCEEDED, RunState.FAILED):
                    async for event in client.join(run.run_id):
                        if event.run is not None:
                            final = event.run
            if final.state is RunState.FAILED and final.error and final.error.type == "RunLost":
                lost.append(final.error.message)  # durability exit: nothing was stored
                continue
            recovery.append(time.perf_counter() - killed)
            assert final.state is RunState.SUCCEEDED, final
            assert final.output == {"steps": args.steps}, final
            counts = Counter(int(line.split()[1]) for line in watch.lines() if line.startswith(key))
            assert set(counts) == set(range(args.steps)), counts
            in_flight = max(before)
            reran.append(sum(1 for index in set(before) if counts[index] > 1))
            finished_reran.append(
                sum(1 for index in set(before) if index < in_flight and counts[index] > 1)
            )
            before_kill.append(len(before))
    finally:
        watch.close()
    return {
        "run_seconds": recovery,
        "wall_seconds": time.perf_counter() - wall,
        "reran_steps": reran,
        "finished_reran_steps": finished_reran,
        "steps_before_kill": before_kill,
        "lost_runs": lost,
    }


async def memory(app: App, args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    assert stack.server is not None and stack.worker is not None and not app.graph
    for _ in range(args.warmup):
        await app.invoke(run_key("warmup"))
    stack.mark()
    baseline = rss_bytes(stack.server.pid)
    slots = asyncio.Semaphore(32)

    async def wait_on_interrupt() -> None:
        async with slots:
            await app.invoke(run_key("wait"), wait=True)

    wall = time.perf_counter()
    await asyncio.gather(*(wait_on_interrupt() for _ in range(args.runs)))
    wall = time.perf_counter() - wall
    interrupted = rss_bytes(stack.server.pid)
    worker_interrupted = rss_bytes(stack.worker.pid)

    async def hold(key: str) -> None:
        run = await app.client.invoke("held", key, thread_id=key, durability=args.durability)
        assert run.output == key, run

    count = args.concurrency
    holding = asyncio.gather(*(hold(run_key("held")) for _ in range(count)))
    try:
        await asyncio.to_thread(
            stack.worker.wait_until,
            lambda lines: sum(line.startswith("gate ") for line in lines) >= count,
            f"hold {count} gates open",
        )
        in_flight = rss_bytes(stack.server.pid)
        worker_in_flight = rss_bytes(stack.worker.pid)
    finally:
        stack.worker.send_line("release")
        await holding
    return {
        "wall_seconds": wall,
        "rss_bytes": interrupted,
        "rss_baseline_bytes": baseline,
        "rss_in_flight_bytes": in_flight,
        "in_flight_runs": count,
        "worker_rss_bytes": worker_interrupted,
        "worker_rss_in_flight_bytes": worker_in_flight,
    }


WORKLOAD_FUNCTIONS = {
    "sequential": sequential,
    "concurrent": concurrent,
    "crash": crash,
    "memory": memory,
}

# --- main -------------------------------------------------------------------------------------


def versions(store: dict[str, str]) -> dict[str, str]:
    import grpc

    import cairn

    return {
        "cairn": cairn.__version__,
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        **store,
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    async with fresh_store(args) as (url, store_versions):
        with tempfile.TemporaryDirectory(prefix="cairn-bench-run-") as tmp:
            stack = Stack(url, args, pathlib.Path(tmp))
            try:
                stack.start_server()
                stack.start_worker()
                workload = WORKLOAD_FUNCTIONS[args.workload]
                async with Client(stack.address) as client:
                    figures = await workload(App(client, args), args, stack)
                stack.measure_cpu()
                assert stack.server is not None
                figures.setdefault("rss_bytes", rss_bytes(stack.server.pid))
            finally:
                stack.stop()
            gaps = stack.step_gaps(figures.pop("keys", []))
    what = "a StateGraph chain of N nodes" if args.system == "cairn-graph" else "an entrypoint"
    return {
        "system": args.system,
        "store": args.store,
        "workload": args.workload,
        "steps": args.steps,
        "runs": args.runs,
        "concurrency": args.concurrency,
        "durability": args.durability,
        "run_seconds": [],
        "step_latency_seconds": gaps,
        "reran_steps": None,
        **figures,
        "cpu_seconds": stack.cpu,
        "versions": versions(store_versions),
        "notes": f"cairn serve and one worker serving {what} as separate processes; "
        "this process is the client (grpc.aio).",
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", default="cairn", choices=SYSTEMS)
    parser.add_argument("--workload", choices=WORKLOADS)
    parser.add_argument("--steps", type=int, default=10, help="steps per run (N)")
    parser.add_argument("--runs", type=int, default=20, help="measured runs (R)")
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--durability", default="sync", choices=["sync", "async", "exit"])
    parser.add_argument("--store", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "CAIRN_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured runs first")
    parser.add_argument("--out", help="where to write the result JSON")
    # The worker process.
    parser.add_argument("--worker", metavar="ADDRESS", help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    parser.add_argument("--clock", help=argparse.SUPPRESS)
    parser.add_argument("--graph-nodes", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--task-slots", type=int, default=16, help=argparse.SUPPRESS)
    parser.add_argument("--entrypoint-slots", type=int, default=256, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return args
    if args.workload is None or args.out is None:
        parser.error("--workload and --out are required")
    if args.steps < 1 or args.runs < 1 or args.warmup < 0:
        parser.error("--steps and --runs must be at least 1, --warmup at least 0")
    if args.system == "cairn-graph" and args.workload in ("crash", "memory"):
        parser.error("cairn-graph runs the sequential and concurrent workloads")
    if args.workload == "crash" and args.steps < 2:
        parser.error("the crash workload needs --steps of at least 2")
    if args.concurrency is None:
        args.concurrency = {"concurrent": 32, "memory": 256}.get(args.workload, 1)
    return args


def main() -> int:
    args = parse_args()
    if args.worker:
        try:  # as Worker.run_sync does
            import uvloop
        except ImportError:
            asyncio.run(serve_worker(args))
        else:
            uvloop.run(serve_worker(args))
        return 0

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop children

    signal.signal(signal.SIGTERM, terminate)
    result = asyncio.run(bench(args))
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    line = f"{args.system}/{args.store} {args.workload} N={args.steps} R={args.runs}"
    if result["run_seconds"]:
        line += f" median {statistics.median(result['run_seconds']) * 1e3:.1f} ms/run"
    if result["wall_seconds"]:
        line += f", wall {result['wall_seconds']:.2f} s"
    if result["reran_steps"] is not None:
        line += f", reran {result['reran_steps']} (finished {result['finished_reran_steps']})"
    print(line, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
