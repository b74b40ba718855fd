"""DBOS peer runner: a DBOS workflow calling a trivial @DBOS.step N times, with
a SQLite or a Postgres system database, in this process.

    bench/.venv-peers/bin/python bench/peers/run_dbos.py \\
        --system dbos --workload sequential --steps 10 --runs 20 --out r.json

The CLI and the JSON it writes are described in bench/peers/__init__.py.
Sequential and crash runs use DBOS's synchronous workflows; concurrent and
memory runs use its async workflows (coroutines on the caller's event loop,
database calls on a thread pool), which DBOS documents for concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import time
from collections.abc import Iterator
from typing import Any

from _shared import (
    CHILD_TIMEOUT_SECONDS,
    Result,
    StepClock,
    StepLog,
    crash_trial,
    measure_concurrent,
    measure_sequential,
    parse_args,
    rss_bytes,
    run_id,
    scratch_database,
    scratch_dir,
)
from dbos import DBOS, DBOSConfig, SetWorkflowID

SYSTEMS = ("dbos",)
TOPIC = "go"

CLOCK = StepClock()
LOG = StepLog()
# Runs of the memory workload that have reached DBOS.recv_async.
WAITING: set[str] = set()


@DBOS.step()
def step(index: int, run: str) -> dict[str, Any]:
    CLOCK.mark(run)
    LOG.record(index)
    return {"index": index, "ok": True}


@DBOS.step()
async def astep(index: int, run: str) -> dict[str, Any]:
    CLOCK.mark(run)
    LOG.record(index)
    return {"index": index, "ok": True}


@DBOS.workflow()
def chain(n: int, run: str) -> dict[str, Any]:
    done = 0
    for index in range(n):
        done += step(index, run)["ok"]
    return {"steps": done}


@DBOS.workflow()
async def achain(n: int, run: str, wait: bool) -> dict[str, Any]:
    done = 0
    for index in range(n):
        done += (await astep(index, run))["ok"]
    if not wait:
        return {"steps": done}
    WAITING.add(run)
    answer = await DBOS.recv_async(TOPIC, timeout_seconds=CHILD_TIMEOUT_SECONDS)
    return {"steps": done, "answer": answer}


def check(output: dict[str, Any], steps: int) -> None:
    if output["steps"] != steps:
        raise AssertionError(f"the run did {output['steps']} of {steps} steps: {output!r}")


@contextlib.contextmanager
def launched(url: str) -> Iterator[None]:
    """DBOS configured on `url` and launched (which also recovers the
    workflows it finds pending), destroyed afterwards."""
    config: DBOSConfig = {
        "name": "cairn-peers-bench",
        "system_database_url": url,
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    try:
        yield
    finally:
        DBOS.destroy()


@contextlib.contextmanager
def storage(args: argparse.Namespace) -> Iterator[str]:
    """A fresh SQLite file or Postgres database for this invocation."""
    if args.store == "sqlite":
        with scratch_dir() as tmp:
            yield f"sqlite:///{tmp / 'dbos.sqlite'}"
    else:
        with scratch_database(args.pg_url, "peers_dbos") as url:
            yield url


def sequential(args: argparse.Namespace, url: str, result: Result) -> None:
    with launched(url):

        def run_one(run: str) -> None:
            with SetWorkflowID(run):
                check(chain(args.steps, run), args.steps)

        result.run_seconds, keys, result.wall_seconds = measure_sequential(run_one, args)
        result.step_latency_seconds = CLOCK.gaps(keys)


def concurrent(args: argparse.Namespace, url: str, result: Result) -> None:
    async def main() -> None:
        with launched(url):

            async def run_one(run: str) -> None:
                with SetWorkflowID(run):
                    check(await achain(args.steps, run, False), args.steps)

            result.run_seconds, keys, result.wall_seconds = await measure_concurrent(run_one, args)
            result.step_latency_seconds = CLOCK.gaps(keys)

    asyncio.run(main())
    result.notes.append("Async workflows and steps, C run as asyncio tasks on one event loop.")


def crash(args: argparse.Namespace, url: str, result: Result) -> None:
    CLOCK.enabled = False
    with scratch_dir() as tmp:
        result.reran_steps = []
        before_kill = []
        for trial in range(args.runs):
            run = run_id("crash")
            LOG.path = tmp / f"steps-{trial}.log"

            def start(run: str = run) -> None:
                with launched(url), SetWorkflowID(run):
                    chain(args.steps, run)

            def recover(run: str = run) -> Any:
                # DBOS.launch() finds the pending workflow and runs it again.
                with launched(url):
                    output: dict[str, Any] = DBOS.retrieve_workflow(run).get_result()
                check(output, args.steps)
                return output

            outcome = crash_trial(LOG, args.steps, start, recover)
            result.reran_steps.append(outcome.reran_steps)
            result.run_seconds.append(outcome.recovery_seconds)
            before_kill.append(outcome.steps_before_kill)
    result.extra["steps_before_kill"] = before_kill
    result.notes.append(
        "Recovery is DBOS.launch() in a new process (it re-enqueues pending workflows) "
        "and waiting for the workflow's result; run_seconds include launch."
    )


def waiting_in_recv() -> int:
    """How many workflows wait in recv, from the system database's waiter map
    (a private attribute; the count of runs about to call recv otherwise)."""
    from dbos._dbos import _get_dbos_instance

    waiters = getattr(_get_dbos_instance()._sys_db, "notifications_map", None)
    if waiters is None or not hasattr(waiters, "snapshot"):
        return len(WAITING)
    return len(waiters.snapshot())


def memory(args: argparse.Namespace, url: str, result: Result) -> None:
    CLOCK.enabled = False

    async def all_waiting(count: int) -> None:
        deadline = time.monotonic() + CHILD_TIMEOUT_SECONDS
        while len(WAITING) < count or waiting_in_recv() < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{waiting_in_recv()} of {count} runs reached recv")
            await asyncio.sleep(0.01)

    async def start(runs: list[str]) -> list[Any]:
        handles = []
        for run in runs:
            with SetWorkflowID(run):
                handles.append(await DBOS.start_workflow_async(achain, args.steps, run, True))
        await all_waiting(len(runs))
        return handles

    async def finish(runs: list[str], handles: list[Any]) -> None:
        for run in runs:
            await DBOS.send_async(run, "go", TOPIC)
        for handle in handles:
            check(await handle.get_result(), args.steps)
        WAITING.clear()

    async def main() -> None:
        with launched(url):
            warmup = [run_id("warmup") for _ in range(args.warmup)]
            await finish(warmup, await start(warmup))
            gc.collect()
            baseline = rss_bytes()
            runs = [run_id("wait") for _ in range(args.runs)]
            began = time.perf_counter()
            handles = await start(runs)
            result.wall_seconds = time.perf_counter() - began
            gc.collect()
            result.rss_bytes = rss_bytes()
            result.extra["rss_baseline_bytes"] = baseline
            await finish(runs, handles)

    asyncio.run(main())
    result.notes.append(
        "R async workflows each ran N steps and then waited in DBOS.recv_async, all in "
        "this process, when RSS was read; then each got a message and finished."
    )


WORKLOADS = {
    "sequential": sequential,
    "concurrent": concurrent,
    "crash": crash,
    "memory": memory,
}


def main() -> None:
    args = parse_args(SYSTEMS)
    result = Result(
        system=args.system,
        store=args.store,
        workload=args.workload,
        steps=args.steps,
        runs=args.runs,
        concurrency=args.concurrency,
        # A step's output is committed before the workflow goes on: DBOS has no
        # other mode.
        durability="sync",
        packages=("dbos", "sqlalchemy", "psycopg"),
    )
    if args.durability != "sync":
        result.notes.append(f"--durability {args.durability} ignored: DBOS has one mode.")
    result.notes.append(
        "DBOS system database on a fresh "
        + (
            "SQLite file (DBOS's defaults: rollback journal, IMMEDIATE transactions)."
            if args.store == "sqlite"
            else "Postgres database (DBOS's default pool of 20)."
        )
    )
    if args.workload in ("sequential", "concurrent"):
        result.notes.append(
            f"{args.warmup} unmeasured warm-up run(s) first; each run a fresh workflow id."
        )
    with storage(args) as url:
        WORKLOADS[args.workload](args, url, result)
    result.write(args.out)


if __name__ == "__main__":
    main()
