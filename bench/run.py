"""The benchmarks of issue 7 in one command: Cairn beside LangGraph, DBOS and Restate.

    .venv/bin/python bench/run.py [--quick] [--systems cairn,langgraph-functional,...]
        [--stores sqlite,postgres] [--pg-url URL] [--max-seconds 1080] [--update-readme]

Needs the `bench` extra in this venv (`.venv/bin/pip install -e '.[bench]'`,
for matplotlib) and Postgres at --pg-url for the Postgres rows; it builds the
peers' venv (bench/peers/setup.sh) when that is missing or stale.

It runs one measurement after the other (each a process of its own: Cairn's
through bench/cairn_runner.py, the peers' through bench/peers/*.py, all with
the same command line and JSON output), then bench/history.py and
bench/floor.py (the floor under a step, measured beside Cairn), and writes
into bench/results/: results.md and results.json (the tables and the ratios
issue 7 sets targets for), bench.png (the plots), and the runners' own JSON
under tmp/ (ignored by git). With --update-readme, the README's Benchmarks
section gets the new table.

The plan (`plan`) is sized for a 2-core machine to finish in under 18
minutes: the most important measurements first (those the ratios need), each
with a time limit, and whatever no longer fits before --max-seconds is
skipped and listed as such. A measurement that overruns is stopped (SIGTERM,
then SIGKILL) with the processes it started, by PID. --quick runs a
seconds-long smoke plan (SQLite only) that checks the harness end to end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import platform
import select
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import report

BENCH = pathlib.Path(__file__).resolve().parent
ROOT = BENCH.parent
PEER_RUNNERS = {
    "langgraph-functional": BENCH / "peers" / "run_langgraph.py",
    "langgraph-graph": BENCH / "peers" / "run_langgraph.py",
    "dbos": BENCH / "peers" / "run_dbos.py",
    "restate": BENCH / "peers" / "run_restate.py",
}
SYSTEMS = ("cairn", "cairn-graph", *PEER_RUNNERS)
# Systems that bring their own store: their jobs run whatever --stores says.
OWN_STORES = {"restate": "restate"}
FUNCTIONAL = ("cairn", "langgraph-functional", "dbos")
GRAPH = ("cairn-graph", "langgraph-graph")
TRIALS = 3  # paired trials of each throughput ratio (see plan)
RATIO_JOBS = 16 * TRIALS + 2  # the first jobs of the full plan: those the ratios need
JOB_LIMIT = 150.0  # seconds, for any one measurement
REPORT_RESERVE = 15.0  # seconds kept for the tables and plots
README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"


@dataclass
class Job:
    system: str
    workload: str
    steps: int
    runs: int
    store: str = "sqlite"
    concurrency: int | None = None
    durability: str = "sync"
    extra: list[str] = field(default_factory=list)
    trial: int = 1  # of a measurement repeated for a paired ratio

    @property
    def name(self) -> str:
        parts = [self.system, self.store, self.workload, f"n{self.steps}", f"r{self.runs}"]
        if self.concurrency:
            parts.append(f"c{self.concurrency}")
        if self.durability != "sync":
            parts.append(self.durability)
        if self.trial > 1:
            parts.append(f"t{self.trial}")
        return "-".join(parts)

    def argv(self, peers_python: pathlib.Path | None, pg_url: str, out: pathlib.Path) -> list[str]:
        if self.system.startswith("cairn"):
            argv = [sys.executable, str(BENCH / "cairn_runner.py")]
        else:
            assert peers_python is not None
            argv = [str(peers_python), str(PEER_RUNNERS[self.system])]
        argv += ["--system", self.system, "--workload", self.workload]
        argv += ["--steps", str(self.steps), "--runs", str(self.runs), "--store", self.store]
        argv += ["--pg-url", pg_url, "--durability", self.durability, "--out", str(out)]
        if self.concurrency:
            argv += ["--concurrency", str(self.concurrency)]
        return argv + self.extra


def plan(quick: bool) -> list[Job]:
    """What to measure, most important first (the ratios need the first ones)."""
    if quick:
        return [
            *(Job(s, "sequential", 4, 3, store=OWN_STORES.get(s, "sqlite")) for s in SYSTEMS),
            *(Job(s, "concurrent", 4, 8, concurrency=4) for s in FUNCTIONAL),
            *(Job(s, "crash", 4, 1) for s in FUNCTIONAL),
            *(Job(s, "memory", 1, 20, concurrency=8) for s in FUNCTIONAL),
            Job("restate", "concurrent", 4, 8, store="restate", concurrency=4),
            Job("restate", "crash", 4, 1, store="restate"),
        ]
    # The ratios: Cairn against LangGraph's functional API, on SQLite and on
    # Postgres. This machine's speed drifts by tens of percent within
    # minutes, so each throughput pair runs back to back, TRIALS times, and
    # the report takes the median of the paired ratios.
    shapes = (
        ("sequential", 10, 200, 100, None),
        ("sequential", 100, 20, 20, None),
        ("concurrent", 10, 256, 256, 32),
        ("concurrent", 10, 256, 256, 256),
    )
    jobs = [
        Job(system, workload, n, runs if store == "sqlite" else pg_runs, **where)
        for trial in range(1, TRIALS + 1)
        for store in ("sqlite", "postgres")
        for workload, n, runs, pg_runs, concurrency in shapes
        for system in FUNCTIONAL[:2]
        for where in [{"store": store, "concurrency": concurrency, "trial": trial}]
    ]
    jobs += [
        Job("cairn", "crash", 20, 3),
        Job("langgraph-functional", "crash", 20, 3),
        # The rest on SQLite.
        Job("dbos", "sequential", 10, 200),
        Job("cairn", "sequential", 10, 200, durability="async"),
        Job("cairn", "sequential", 10, 200, durability="exit"),
        Job("dbos", "sequential", 100, 20),
        Job("cairn", "sequential", 100, 20, durability="async"),
        Job("cairn", "sequential", 100, 20, durability="exit"),
        *(Job(s, "sequential", 10, 100) for s in GRAPH),
        *(Job(s, "sequential", 100, 10) for s in GRAPH),
        Job("dbos", "concurrent", 10, 256, concurrency=32),
        Job("dbos", "concurrent", 10, 256, concurrency=256),
        Job("dbos", "crash", 20, 2),
        Job("cairn", "crash", 20, 3, durability="async"),
        *(Job(s, "memory", 1, 1000, concurrency=256) for s in FUNCTIONAL),
    ]
    # Postgres: the same systems, fewer shapes.
    jobs += [
        *(Job("dbos", "sequential", n, r, store="postgres") for n, r in ((10, 100), (100, 20))),
        *(Job(s, "sequential", 10, 50, store="postgres") for s in GRAPH),
        Job("dbos", "concurrent", 10, 256, store="postgres", concurrency=32),
        Job("dbos", "concurrent", 10, 256, store="postgres", concurrency=256),
        *(Job(s, "crash", 20, 3 if s != "dbos" else 2, store="postgres") for s in FUNCTIONAL),
    ]
    # Restate on its own store (its log and partition store, fsynced like
    # Postgres): last, so that it never pushes the rows above out of time.
    jobs += [
        Job("restate", "sequential", 10, 200, store="restate"),
        Job("restate", "sequential", 100, 20, store="restate"),
        Job("restate", "concurrent", 10, 256, store="restate", concurrency=32),
        Job("restate", "concurrent", 10, 256, store="restate", concurrency=256),
        Job("restate", "crash", 20, 3, store="restate"),
    ]
    return jobs


def selected(jobs: list[Job], systems: set[str], stores: set[str]) -> list[Job]:
    """The jobs of the chosen systems on the chosen stores; a system with a
    store of its own (OWN_STORES) runs on it whatever the stores."""
    return [
        job
        for job in jobs
        if job.system in systems
        and (job.store in stores or OWN_STORES.get(job.system) == job.store)
    ]


# --- processes --------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """The PIDs of a process's children, grandchildren, ... (from /proc)."""
    found: list[int] = []
    stack = [pid]
    while stack:
        parent = stack.pop()
        with contextlib.suppress(OSError):
            for task in pathlib.Path(f"/proc/{parent}/task").iterdir():
                with contextlib.suppress(OSError):
                    children = [int(c) for c in (task / "children").read_text().split()]
                    found += children
                    stack += children
    return found


def signal_pids(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def stop_job(process: subprocess.Popen[bytes], pidfile: pathlib.Path) -> None:
    """SIGTERM the runner (it stops its own children), then SIGKILL whatever
    of it and its children is left, by PID."""
    children = descendants(process.pid)
    if pidfile.exists():
        children += [int(p) for p in pidfile.read_text().split()]
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(15)
    handles = {}
    for pid in children:
        with contextlib.suppress(OSError):
            handles[pid] = os.pidfd_open(pid)  # readable once the process has exited
    try:
        signal_pids(list(handles), signal.SIGTERM)
        deadline = time.monotonic() + 10
        while handles and time.monotonic() < deadline:
            ready, _, _ = select.select(list(handles.values()), [], [], 0.5)
            for pid in [pid for pid, fd in handles.items() if fd in ready]:
                os.close(handles.pop(pid))
        signal_pids(list(handles), signal.SIGKILL)
    finally:
        for fd in handles.values():
            os.close(fd)


def run_job(
    job: Job, argv: list[str], out: pathlib.Path, timeout: float, log: pathlib.Path
) -> dict[str, Any]:
    out.unlink(missing_ok=True)
    pidfile = out.with_name(out.name + ".pids")
    started = time.monotonic()
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr
        )
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_job(process, pidfile)
            return {"status": f"stopped after its time limit of {timeout:.0f} s"}
        except BaseException:
            stop_job(process, pidfile)
            raise
    seconds = time.monotonic() - started
    if code != 0 or not out.exists():
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        return {"status": f"failed (exit {code}): {' / '.join(tail)}", "seconds": seconds}
    row = report.summarize(json.loads(out.read_text()))
    row["seconds"] = round(seconds, 1)
    return row


def run_history(
    args: argparse.Namespace, raw: pathlib.Path, deadline: float, pg: str
) -> dict[str, Any] | None:
    """bench/history.py: a step's store commit at 10 and 10,000 prior checkpoints."""
    steps, histories = ("20", "10,1000") if args.quick else ("200", "10,10000")
    argv = ["--steps", steps, "--histories", histories, "--postgres", pg]
    return run_side("history", argv, raw, deadline, limit_flag=True)


def run_floor(
    args: argparse.Namespace, raw: pathlib.Path, deadline: float, pg: str
) -> dict[str, Any] | None:
    """bench/floor.py: a bare gRPC round trip and one step's commit, beside Cairn."""
    counts = ("300", "100") if args.quick else ("3000", "500")
    argv = ["--round-trips", counts[0], "--commits", counts[1]]
    argv += ["--postgres", pg] if pg else ["--no-postgres"]
    return run_side("floor", argv, raw, deadline)


def run_side(
    name: str,
    options: list[str],
    raw: pathlib.Path,
    deadline: float,
    *,
    limit_flag: bool = False,
) -> dict[str, Any] | None:
    """Run bench/<name>.py with `options` and --json, within the time left
    (passed on as --max-seconds with `limit_flag`); its JSON, or None."""
    out = raw / f"{name}.json"
    argv = [sys.executable, str(BENCH / f"{name}.py"), *options, "--json", str(out)]
    left = deadline - time.monotonic() - REPORT_RESERVE
    print(f"[{name}] " + shlex.join(argv[1:]), file=sys.stderr)
    if left < 5:
        return None
    if limit_flag:
        argv += ["--max-seconds", str(int(min(left, JOB_LIMIT)))]
    with (raw / f"{name}.log").open("wb") as log:
        process = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            code: int | None = process.wait(min(left, JOB_LIMIT) + 10)
        except subprocess.TimeoutExpired:
            stop_job(process, out.with_name(f"{name}.pids"))
            code = None
        except BaseException:
            stop_job(process, out.with_name(f"{name}.pids"))
            raise
    if code != 0 or not out.exists():
        print(
            f"    bench/{name}.py failed (exit {code}), see {raw / f'{name}.log'}", file=sys.stderr
        )
        return None
    print("    ok", file=sys.stderr)
    return dict(json.loads(out.read_text()))


# --- the machine ------------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    system = f"{platform.system()} {platform.release()}"
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, {system}"


def git_state() -> str:
    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
        )
        return result.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "service", "sdk")
    return f"commit {commit}" + (" (service/sdk with uncommitted changes)" if dirty else "")


def load() -> str:
    return " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])


def postgres_version(pg_url: str) -> str | None:
    import asyncio

    import asyncpg

    async def ask() -> str:
        conn = await asyncpg.connect(pg_url.split("?", 1)[0], timeout=5)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    try:
        return asyncio.run(ask())
    except Exception:  # unreachable: the Postgres rows are skipped
        return None


def versions(rows: list[dict[str, Any]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for row in rows:
        for name, version in (row.get("versions") or {}).items():
            if name != "python" or row["system"].startswith("cairn"):
                found.setdefault(name, version.split(" ")[0])
    return found


# --- main -------------------------------------------------------------------------------------


def update_readme(markdown: str) -> None:
    path = ROOT / "README.md"
    text = path.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise SystemExit(f"README.md has no {README_START} ... {README_END} section")
    body = markdown.replace("### ", "#### ")
    text = text[: start + len(README_START)] + "\n" + body + text[end:]
    path.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "CAIRN_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--max-seconds", type=float, default=1080.0)
    parser.add_argument("--results", type=pathlib.Path, default=BENCH / "results")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()
    began = time.monotonic()
    deadline = began + args.max_seconds
    systems = set(args.systems.split(","))
    stores = set(args.stores.split(","))
    if args.quick:
        stores &= {"sqlite"}
    unknown = systems - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems: {sorted(unknown)}")
    pg_version = postgres_version(args.pg_url) if "postgres" in stores else None
    if "postgres" in stores and pg_version is None:
        print(f"Postgres at {args.pg_url} is unreachable: no Postgres rows", file=sys.stderr)
        stores.discard("postgres")

    raw = args.results / "tmp" / ("quick" if args.quick else "run")
    folder = raw if args.quick else args.results  # a smoke run leaves the results alone
    raw.mkdir(parents=True, exist_ok=True)
    for old in raw.glob("*"):
        if old.is_file():
            old.unlink()
    peers_python = None
    if systems & set(PEER_RUNNERS):
        setup = subprocess.run(
            ["bash", str(BENCH / "peers" / "setup.sh")],
            capture_output=True,
            text=True,
            timeout=max(1.0, deadline - time.monotonic()),
            check=False,
        )
        if setup.returncode == 0:
            peers_python = pathlib.Path(setup.stdout.strip())
        else:
            print(f"bench/peers/setup.sh failed, no peers:\n{setup.stderr}", file=sys.stderr)
            systems -= set(PEER_RUNNERS)

    load_before = load()
    rows: list[dict[str, Any]] = []
    history = None
    jobs = selected(plan(args.quick), systems, stores)
    for i, job in enumerate(jobs, 1):
        if i == RATIO_JOBS + 1 and "cairn" in systems:
            history = run_history(
                args, raw, deadline, pg=args.pg_url if "postgres" in stores else ""
            )
        left = deadline - time.monotonic() - REPORT_RESERVE - (0 if args.quick else 20)
        out = raw / f"{job.name}.json"
        if left < 5:
            row: dict[str, Any] = {"status": "skipped: out of time (--max-seconds)"}
        else:
            argv = job.argv(peers_python, args.pg_url, out)
            print(f"[{i}/{len(jobs)}] {shlex.join(argv[1:2] + argv[2:10])}", file=sys.stderr)
            row = run_job(job, argv, out, min(JOB_LIMIT, left), raw / f"{job.name}.log")
        row.setdefault("system", job.system)
        row.setdefault("store", job.store)
        row.setdefault("workload", job.workload)
        row["job"] = job.name
        row["trial"] = job.trial
        print(f"    {row['status']} {row.get('seconds', '')}", file=sys.stderr)
        rows.append(row)
    if len(jobs) <= RATIO_JOBS and "cairn" in systems:
        history = run_history(args, raw, deadline, pg=args.pg_url if "postgres" in stores else "")
    floor = None
    if "cairn" in systems:
        floor = run_floor(args, raw, deadline, pg=args.pg_url if "postgres" in stores else "")

    found = versions(rows)
    if pg_version:
        found["postgres"] = pg_version.split(" ")[0]
    meta = {
        "machine": machine(),
        "versions": found,
        "git": git_state(),
        "command": shlex.join([".venv/bin/python", "bench/run.py", *sys.argv[1:]]),
        "quick": args.quick,
        "load_before": load_before,
        "load_after": load(),
        "wall_seconds": time.monotonic() - began,
    }
    result = report.write(folder, rows, history, meta, floor=floor)
    markdown = report.markdown(result)
    if args.update_readme:
        update_readme(report.markdown(result, notes=False))
    print(markdown)
    print(f"wrote {folder}/results.md, results.json and bench.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
