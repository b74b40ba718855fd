"""A worker process for end-to-end tests.

Each task appends `<event> <task name> <task id> <pid>` to the --log file, so
tests can count executions per task id across processes.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import operator
import os
import pathlib
import time
from typing import Annotated, Any, TypedDict

from cairn import (
    START,
    CompiledStateGraph,
    StateGraph,
    Worker,
    entrypoint,
    get_stream_writer,
    interrupt,
    task,
)
from cairn._context import current

LOG: pathlib.Path


def record(event: str) -> None:
    execution = current()
    line = f"{event} {execution.assignment.name} {execution.task_id} {os.getpid()}\n"
    with LOG.open("a") as handle:
        handle.write(line)


@task
def step(i: int) -> int:
    record("start")
    time.sleep(0.02)
    record("end")
    return i + 1


@entrypoint()
def twenty_steps(n: int) -> int:
    value = 0
    for _ in range(n):
        value = step(value).result()
    return value


@task
def stall_once(x: str) -> str:
    """Reports that it started, then stalls on the first execution (the test
    kills that worker); later executions return at once."""
    record("start")
    get_stream_writer()({"started_on": os.getpid()})
    marker = LOG.with_suffix(".stalled")
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.05)
    record("end")
    return f"{x} done by {os.getpid()}"


@entrypoint()
def stalling(x: str) -> str:
    return stall_once(x).result()


@task
def write_essay(topic: str) -> str:
    record("start")
    return f"An essay about topic: {topic}"


@entrypoint()
def essay(inputs: dict) -> dict:
    text = write_essay(inputs["topic"]).result()
    approved = interrupt({"essay": text, "action": "Please approve/reject the essay"})
    return {"essay": text, "is_approved": approved}


class CountState(TypedDict):
    count: int
    visited: Annotated[list, operator.add]


def visit(state: CountState) -> dict:
    record("start")
    time.sleep(0.02)
    record("end")
    return {"count": state["count"] + 1, "visited": [state["count"]]}


def build_ten_nodes() -> CompiledStateGraph:
    builder = StateGraph(CountState)
    names = [f"n{i}" for i in range(10)]
    for name in names:
        builder.add_node(name, visit)
    builder.add_edge(START, names[0])
    for left, right in itertools.pairwise(names):
        builder.add_edge(left, right)
    return builder.compile(name="ten_nodes")


class TrailState(TypedDict):
    count: int
    trail: Annotated[list, operator.add]


def visit_inside(state: TrailState) -> dict:
    record("start")
    time.sleep(0.02)
    record("end")
    return {"count": state["count"] + 1, "trail": [state["count"]]}


def build_nested_nodes() -> CompiledStateGraph:
    """p0 -> sub (a subgraph of six nodes sharing `count`) -> p1."""
    inside = StateGraph(TrailState)
    names = [f"s{i}" for i in range(6)]
    inside.add_sequence([(name, visit_inside) for name in names])
    inside.add_edge(START, names[0])
    builder = StateGraph(CountState)
    builder.add_node("p0", visit)
    builder.add_node("sub", inside.compile(name="six_nodes"))
    builder.add_node("p1", visit)
    builder.add_edge(START, "p0")
    builder.add_edge("p0", "sub")
    builder.add_edge("sub", "p1")
    return builder.compile(name="nested_nodes")


def count(event: str, key: str, index: int) -> None:
    """`<event> <key> <index> <pid>` in the .steps file beside the log."""
    with LOG.with_suffix(".steps").open("a") as handle:
        handle.write(f"{event} {key} {index} {os.getpid()}\n")


@task
def counted(key: str, index: int) -> str:
    count("start", key, index)
    time.sleep(0.01)
    count("end", key, index)
    return f"{key}:{index}"


@task
def gated(key: str, index: int) -> str:
    """Logs its start, then waits until the test creates `<log>.<key>.go`."""
    count("start", key, index)
    gate = LOG.with_suffix(f".{key}.go")
    deadline = time.monotonic() + 120
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    count("end", key, index)
    return f"{key}:{index}"


@entrypoint()
def counted_steps(job: dict[str, Any]) -> list[str]:
    """`job["steps"]` counted tasks in a row; the one at `job.get("gate")`
    waits for the test."""
    key, gate = job["key"], job.get("gate", -1)
    return [
        (gated if index == gate else counted)(key, index).result() for index in range(job["steps"])
    ]


FUNCTIONS = [
    counted,
    gated,
    counted_steps,
    step,
    twenty_steps,
    stall_once,
    stalling,
    write_essay,
    essay,
    build_ten_nodes(),
    build_nested_nodes(),
]


async def main() -> None:
    global LOG
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--log", required=True, type=pathlib.Path)
    parser.add_argument("--max-concurrency", type=int, default=16)
    args = parser.parse_args()
    LOG = args.log
    worker = Worker(args.address, functions=FUNCTIONS, max_concurrency=args.max_concurrency)
    runner = asyncio.ensure_future(worker.run())
    await worker.connected.wait()
    print("worker ready", worker.worker_id, os.getpid(), flush=True)
    await runner


if __name__ == "__main__":
    asyncio.run(main())
