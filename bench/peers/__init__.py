"""Peer runners for the benchmarks of issues 7 and 21: LangGraph, DBOS and
Restate, measured the way bench/run.py measures Cairn.

Setup
-----
The peers live in their own venv, bench/.venv-peers, built from the pins in
bench/requirements-peers.txt so that they never meet Cairn's dependencies.
`bash bench/peers/setup.sh` (or `ensure_venv()` below, from any Python with
only the standard library) builds it when missing or when the requirements
file changed (sha256), does nothing otherwise, and prints the venv's python.
The first build takes about 30 s; then about 10 ms.

Command line (the same for every runner)
----------------------------------------
    bench/.venv-peers/bin/python bench/peers/<runner>.py
        --system <name> --workload <sequential|concurrent|crash|memory>
        --steps N --runs R [--concurrency C] [--store sqlite|postgres]
        [--pg-url URL] [--durability sync|async|exit] [--warmup W] --out result.json

Runners and their systems (`RUNNERS` maps one to the other):
    run_langgraph.py  langgraph-functional  an @entrypoint calling a trivial @task N
                                            times in sequence (each returns a small dict)
                      langgraph-graph       a StateGraph chain of N nodes
    run_dbos.py       dbos                  a @DBOS.workflow calling a trivial
                                            @DBOS.step N times in sequence
    run_restate.py    restate               a Restate service handler awaiting a
                                            trivial ctx.run N times (restate-server
                                            and the SDK's service as processes of
                                            their own, in a private network
                                            namespace; --store restate; see
                                            bench/README.md)

--store sqlite (default) puts LangGraph's checkpoints (SqliteSaver, or
AsyncSqliteSaver for the concurrent workload) or DBOS's system database on a
fresh file in a temporary directory. --store postgres creates a fresh database
`peers_<system>_<pid>_<hex>` beside the one in --pg-url (default
postgresql://postgres@127.0.0.1:5432/test) and drops it at the end
(PostgresSaver / AsyncPostgresSaver on a pool of min(C, 20) / DBOS with its
default pool of 20). Everything runs in the runner's process (no server).
--durability is LangGraph's mode, sync by default; DBOS has only one (each
step's output is committed before the workflow goes on) and reports "sync".
--warmup W (default 1) runs first and unmeasured, in sequential, concurrent and
memory. Every run has a fresh thread id / workflow id.

Workloads:
    sequential  R runs one after another (LangGraph's sync API; DBOS's sync
                workflows). run_seconds: each run's duration.
    concurrent  R runs, at most C (default 32) in flight, as asyncio tasks on one
                event loop (LangGraph's ainvoke; DBOS's async workflows and steps).
                run_seconds: each run's duration from the moment it got its slot.
    crash       R trials (keep R small: each forks two processes; DBOS's
                recovery takes 2-3 s of its own polling). A child runs one run
                whose steps append their index to a file and to a pipe; the parent
                SIGKILLs the child as soon as the pipe shows step N/2 (1-based)
                finished. A second child resumes (LangGraph: invoke(None) on the
                same thread and store; DBOS: DBOS.launch(), which recovers
                pending workflows, then the workflow's result) and must finish all
                N steps. Both children are forked from the runner after its imports
                and before it opens any store. reran_steps: per trial, how many
                steps that had finished before the kill ran again.
                run_seconds: per trial, the recovery (open store or launch, then
                the rest of the run), excluding process start.
    memory      R runs each do N steps and then wait (LangGraph: interrupt() in
                the entrypoint / in a last node; DBOS: DBOS.recv_async in an async
                workflow); rss_bytes is this process's RSS while all R wait, after
                gc. Then all are resumed and must finish. A LangGraph run waiting
                on an interrupt is only a checkpoint: nothing of it stays in the
                process (see notes).

Output (--out, JSON; one line of summary also goes to stderr):
    system, store, workload, steps, runs, concurrency, durability  as run
    run_seconds           list of floats, see the workloads
    step_latency_seconds  list of floats: within each measured run, the time
                          between consecutive step starts (R*(N-1) values);
                          sequential and concurrent only, else []
    wall_seconds          float: all R measured runs (sequential, concurrent),
                          the R runs reaching their wait (memory); null for crash
    reran_steps           list of ints, one per trial (crash), else null
    rss_bytes             int (memory), else null
    rss_baseline_bytes    int (memory only): RSS after the warm-up, before the R runs
    steps_before_kill     list of ints (crash only): steps in the file at the kill
    versions              {package: version}, and "python"
    notes                 str: how the system was set up, for the table's footnotes
Steps per second: steps / run_seconds for one run, steps * runs / wall_seconds
overall. Exit status is non-zero, with no output file, if a run fails its check
(every run's output is checked) or a child hangs for 120 s.
"""

from __future__ import annotations

import pathlib
import subprocess

__all__ = ["RUNNERS", "SYSTEMS", "command", "ensure_venv"]

HERE = pathlib.Path(__file__).resolve().parent
RUNNERS = {
    "langgraph-functional": HERE / "run_langgraph.py",
    "langgraph-graph": HERE / "run_langgraph.py",
    "dbos": HERE / "run_dbos.py",
    "restate": HERE / "run_restate.py",
}
SYSTEMS = tuple(RUNNERS)


def ensure_venv() -> pathlib.Path:
    """Builds bench/.venv-peers if missing or stale and returns its python.

    >>> python = ensure_venv()  # doctest: +SKIP
    """
    out = subprocess.run(
        ["bash", str(HERE / "setup.sh")], check=True, capture_output=True, text=True
    )
    return pathlib.Path(out.stdout.strip())


def command(
    system: str,
    workload: str,
    *,
    steps: int,
    runs: int,
    out: pathlib.Path,
    concurrency: int | None = None,
    store: str = "sqlite",
    pg_url: str | None = None,
    python: pathlib.Path | None = None,
) -> list[str]:
    """The argv that runs one peer measurement (building the venv if needed).

    >>> subprocess.run(command("dbos", "sequential", steps=10, runs=20,
    ...                        out=pathlib.Path("r.json")), check=True)  # doctest: +SKIP
    """
    argv = [
        str(python or ensure_venv()),
        str(RUNNERS[system]),
        "--system",
        system,
        "--workload",
        workload,
        "--steps",
        str(steps),
        "--runs",
        str(runs),
        "--store",
        store,
        "--out",
        str(out),
    ]
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    if pg_url is not None:
        argv += ["--pg-url", pg_url]
    return argv
