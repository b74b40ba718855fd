"""LangGraph peer runner: the functional API (an entrypoint calling a task N
times) and the graph API (a chain of N nodes), on LangGraph's own SQLite and
Postgres checkpointers, in this process.

    bench/.venv-peers/bin/python bench/peers/run_langgraph.py \\
        --system langgraph-functional --workload sequential --steps 10 --runs 20 --out r.json

The CLI and the JSON it writes are described in bench/peers/__init__.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, NotRequired, TypedDict

from _shared import (
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
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.func import entrypoint, task
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

SYSTEMS = ("langgraph-functional", "langgraph-graph")
# As DBOS's default system database pool, so that neither peer gets more
# connections under load.
PG_POOL_MAX = 20

CLOCK = StepClock()
LOG = StepLog()


# The functional API: an entrypoint calling one trivial task N times in sequence.


@task
def step(index: int, run: str) -> dict[str, Any]:
    CLOCK.mark(run)
    LOG.record(index)
    return {"index": index, "ok": True}


@task
async def astep(index: int, run: str) -> dict[str, Any]:
    CLOCK.mark(run)
    LOG.record(index)
    return {"index": index, "ok": True}


def chain(inputs: dict[str, Any]) -> dict[str, Any]:
    done = 0
    for index in range(inputs["n"]):
        done += step(index, inputs["run"]).result()["ok"]
    if inputs["wait"]:
        return {"steps": done, "answer": interrupt({"run": inputs["run"]})}
    return {"steps": done}


async def achain(inputs: dict[str, Any]) -> dict[str, Any]:
    done = 0
    for index in range(inputs["n"]):
        done += (await astep(index, inputs["run"]))["ok"]
    if inputs["wait"]:
        return {"steps": done, "answer": interrupt({"run": inputs["run"]})}
    return {"steps": done}


# The graph API: N nodes in a chain, one superstep (and checkpoint) each.


class State(TypedDict):
    run: str
    count: int
    answer: NotRequired[str]


def node(index: int, aio: bool) -> Any:
    def sync_node(state: State) -> dict[str, Any]:
        CLOCK.mark(state["run"])
        LOG.record(index)
        return {"count": state["count"] + 1}

    async def async_node(state: State) -> dict[str, Any]:
        CLOCK.mark(state["run"])
        LOG.record(index)
        return {"count": state["count"] + 1}

    return async_node if aio else sync_node


def wait_node(state: State) -> dict[str, Any]:
    return {"answer": interrupt({"run": state["run"]})}


class App:
    """One system's app on a checkpointer: its input, config and the check of
    its output."""

    def __init__(self, args: argparse.Namespace, saver: BaseCheckpointSaver[Any], aio: bool):
        self.args = args
        self.steps = args.steps
        self.wait = args.workload == "memory"
        self.functional = args.system == "langgraph-functional"
        # Pregel's overloads want a typed RunnableConfig; this runner passes dicts.
        self.app: Any
        if self.functional:
            self.app = entrypoint(checkpointer=saver)(achain if aio else chain)
        else:
            graph = StateGraph(State)
            previous = START
            for index in range(self.steps):
                graph.add_node(f"step_{index}", node(index, aio))
                graph.add_edge(previous, f"step_{index}")
                previous = f"step_{index}"
            if self.wait:
                graph.add_node("wait", wait_node)
                graph.add_edge(previous, "wait")
                previous = "wait"
            graph.add_edge(previous, END)
            self.app = graph.compile(checkpointer=saver)

    def input(self, run: str) -> dict[str, Any]:
        if self.functional:
            return {"n": self.steps, "run": run, "wait": self.wait}
        return {"run": run, "count": 0}

    def config(self, run: str) -> dict[str, Any]:
        # A graph of N nodes takes N supersteps; the default limit is 25.
        return {"configurable": {"thread_id": run}, "recursion_limit": self.steps + 10}

    def check(self, output: Any, *, interrupted: bool = False) -> None:
        if interrupted:
            if "__interrupt__" not in output:
                raise AssertionError(f"the run did not interrupt: {output!r}")
            return
        done = output["steps"] if self.functional else output["count"]
        if done != self.steps:
            raise AssertionError(f"the run did {done} of {self.steps} steps: {output!r}")

    def invoke(self, run: str, value: Any = None) -> Any:
        value = self.input(run) if value is None else value
        return self.app.invoke(value, self.config(run), durability=self.args.durability)

    def resume(self, run: str) -> Any:
        """Goes on with a run from its last checkpoint (after a crash)."""
        return self.app.invoke(None, self.config(run), durability=self.args.durability)

    async def ainvoke(self, run: str) -> Any:
        return await self.app.ainvoke(
            self.input(run), self.config(run), durability=self.args.durability
        )


@contextlib.contextmanager
def sync_saver(args: argparse.Namespace, where: str) -> Iterator[BaseCheckpointSaver[Any]]:
    if args.store == "sqlite":
        from langgraph.checkpoint.sqlite import SqliteSaver

        # Tasks run on LangGraph's thread pool, hence check_same_thread=False
        # (what SqliteSaver.from_conn_string does too).
        conn = sqlite3.connect(where, check_same_thread=False)
        try:
            saver = SqliteSaver(conn)
            saver.setup()
            yield saver
        finally:
            conn.close()
    else:
        from langgraph.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(where) as pg_saver:
            pg_saver.setup()
            yield pg_saver


@contextlib.asynccontextmanager
async def async_saver(
    args: argparse.Namespace, where: str
) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    if args.store == "sqlite":
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with AsyncSqliteSaver.from_conn_string(where) as saver:
            await saver.setup()
            yield saver
    else:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        # One connection serializes every call behind a lock; a pool is how
        # LangGraph's docs serve concurrent runs.
        size = min(args.concurrency, PG_POOL_MAX)
        async with AsyncConnectionPool(
            where,
            min_size=size,
            max_size=size,
            open=False,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        ) as pool:
            pg_saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
            await pg_saver.setup()
            yield pg_saver


@contextlib.contextmanager
def storage(args: argparse.Namespace) -> Iterator[str]:
    """A fresh SQLite file or Postgres database for this invocation."""
    if args.store == "sqlite":
        with scratch_dir() as tmp:
            yield str(tmp / "checkpoints.db")
    else:
        with scratch_database(args.pg_url, "peers_langgraph") as url:
            yield url


def sequential(args: argparse.Namespace, where: str, result: Result) -> None:
    with sync_saver(args, where) as saver:
        app = App(args, saver, aio=False)

        def run_one(run: str) -> None:
            app.check(app.invoke(run))

        result.run_seconds, keys, result.wall_seconds = measure_sequential(run_one, args)
        result.step_latency_seconds = CLOCK.gaps(keys)


def concurrent(args: argparse.Namespace, where: str, result: Result) -> None:
    async def main() -> None:
        async with async_saver(args, where) as saver:
            app = App(args, saver, aio=True)

            async def run_one(run: str) -> None:
                app.check(await app.ainvoke(run))

            result.run_seconds, keys, result.wall_seconds = await measure_concurrent(run_one, args)
            result.step_latency_seconds = CLOCK.gaps(keys)

    asyncio.run(main())
    if args.store == "postgres":
        result.notes.append(
            f"AsyncPostgresSaver on a pool of {min(args.concurrency, PG_POOL_MAX)}."
        )


def crash(args: argparse.Namespace, where: str, result: Result) -> None:
    CLOCK.enabled = False
    with scratch_dir() as tmp:
        result.reran_steps = []
        before_kill = []
        for trial in range(args.runs):
            run = run_id("crash")
            LOG.path = tmp / f"steps-{trial}.log"

            def start(run: str = run) -> None:
                with sync_saver(args, where) as saver:
                    App(args, saver, aio=False).invoke(run)

            def recover(run: str = run) -> Any:
                with sync_saver(args, where) as saver:
                    app = App(args, saver, aio=False)
                    output = app.resume(run)
                    app.check(output)
                    return output

            outcome = crash_trial(LOG, args.steps, start, recover)
            result.reran_steps.append(outcome.reran_steps)
            result.run_seconds.append(outcome.recovery_seconds)
            before_kill.append(outcome.steps_before_kill)
    result.extra["steps_before_kill"] = before_kill


def memory(args: argparse.Namespace, where: str, result: Result) -> None:
    CLOCK.enabled = False
    with sync_saver(args, where) as saver:
        app = App(args, saver, aio=False)
        for _ in range(args.warmup):
            run = run_id("warmup")
            app.check(app.invoke(run), interrupted=True)
            app.check(app.invoke(run, Command(resume="go")))
        gc.collect()
        baseline = rss_bytes()
        keys = [run_id("wait") for _ in range(args.runs)]
        start = time.perf_counter()
        for run in keys:
            app.check(app.invoke(run), interrupted=True)
        result.wall_seconds = time.perf_counter() - start
        gc.collect()
        result.rss_bytes = rss_bytes()
        result.extra["rss_baseline_bytes"] = baseline
        for run in keys:
            app.check(app.invoke(run, Command(resume="go")))
    result.notes.append(
        "An interrupted LangGraph run is only a checkpoint in the store: invoke returns at "
        "interrupt() and nothing of the run stays in the process, so rss_bytes - "
        "rss_baseline_bytes is about what the R invocations left behind, not a cost per "
        "waiting run. All R runs were then resumed with Command(resume=...) and finished."
    )


WORKLOADS = {
    "sequential": sequential,
    "concurrent": concurrent,
    "crash": crash,
    "memory": memory,
}


def main() -> None:
    args = parse_args(SYSTEMS)
    store_package = f"langgraph-checkpoint-{args.store}"
    result = Result(
        system=args.system,
        store=args.store,
        workload=args.workload,
        steps=args.steps,
        runs=args.runs,
        concurrency=args.concurrency,
        durability=args.durability,
        packages=(
            "langgraph",
            "langgraph-checkpoint",
            store_package,
            *(("aiosqlite",) if args.store == "sqlite" else ("psycopg", "psycopg-pool")),
        ),
    )
    saver_name = {"sqlite": "SqliteSaver", "postgres": "PostgresSaver"}[args.store]
    if args.workload == "concurrent":
        saver_name = "Async" + saver_name
    result.notes.append(
        f"{saver_name} in the runner's process on a fresh "
        + (
            "SQLite file (WAL, SQLite's default synchronous)."
            if args.store == "sqlite"
            else "Postgres database."
        )
    )
    if args.workload in ("sequential", "concurrent"):
        result.notes.append(
            f"{args.warmup} unmeasured warm-up run(s) first; each run a fresh thread_id."
        )
    with storage(args) as where:
        WORKLOADS[args.workload](args, where, result)
    result.write(args.out)


if __name__ == "__main__":
    main()
