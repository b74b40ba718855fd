"""A graph whose nodes run in two languages: the Python half (see
examples/graph_mixed_worker.ts for the TypeScript one).

It serves the graph `py_review`, which the TypeScript graph `mixed_essay`
runs as its `review` node: `read` counts the draft's words with the
TypeScript task `ts_word_count`, `decide` asks a human with `interrupt()`.
It also serves the task `py_fact` (called by a TypeScript node) and the graph
`py_headline`, whose node calls the TypeScript graph `ts_title` by name.
Every node and task writes a custom stream chunk `{"ran", "language", "pid"}`.

    .venv/bin/python sdk/typescript/examples/graph_mixed_python_worker.py [127.0.0.1:50051]

Prints "python graph worker ready" once connected; stops on SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any, TypedDict

from cairn import END, START, StateGraph, Worker, get_stream_writer, interrupt, remote_task, task


def ran(name: str) -> None:
    get_stream_writer()({"ran": name, "language": "python", "pid": os.getpid()})


ts_word_count = remote_task("ts_word_count")  # served by the TypeScript worker
ts_title = remote_task("ts_title")  # a TypeScript graph, run as a subgraph


class Review(TypedDict):
    draft: str
    words: int
    verdict: str


def read(state: Review) -> dict[str, Any]:
    ran("read")
    return {"words": ts_word_count(state["draft"]).result()}


def decide(state: Review) -> dict[str, Any]:
    ran("decide")
    verdict = interrupt({"draft": state["draft"], "words": state["words"], "asked_by": "python"})
    return {"verdict": verdict}


py_review = (
    StateGraph(Review)
    .add_sequence([("read", read), ("decide", decide)])
    .add_edge(START, "read")
    .add_edge("decide", END)
    .compile(name="py_review")
)


@task
def py_fact(query: dict[str, str]) -> str:
    ran("py_fact")
    return f"the {query['angle']} of {query['topic']}"


class Headline(TypedDict):
    topic: str
    headline: str


def headline(state: Headline) -> dict[str, Any]:
    ran("headline")
    out = ts_title({"topic": state["topic"]}).result()
    return {"headline": f"{out['title']} (checked in Python)"}


py_headline = (
    StateGraph(Headline)
    .add_node("headline", headline)
    .add_edge(START, "headline")
    .add_edge("headline", END)
    .compile(name="py_headline")
)


async def main(address: str) -> None:
    worker = Worker(address, functions=[py_review, py_fact, py_headline])
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: asyncio.ensure_future(worker.stop(1.0)))
    serving = asyncio.ensure_future(worker.run())
    await worker.connected.wait()
    print("python graph worker ready", flush=True)
    await serving


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"))
