"""A LangGraph application that test_cross_process.py runs as its own processes.

    python tests/langgraph/lg_app.py --saver cairn:127.0.0.1:PORT --phase start --log FILE
    python tests/langgraph/lg_app.py --saver sqlite:/tmp/lg.db --phase resume --log FILE

Four scenarios, each on its own thread: a StateGraph whose `review` node calls
`interrupt()` while a parallel `research` node finishes in the same step, and
a functional `@entrypoint` that calls a `@task`, then `interrupt()`, then
another task; each run sync (`invoke`) and async (`ainvoke`). Phase `start`
runs every scenario until its interrupt; phase `resume` answers it with
`Command(resume=...)` and runs to the end. Each phase prints one JSON line with
what a user would look at: interrupts, outputs, `get_state` and the history.
Every node and task appends `<scenario> <name>` to --log, so the test can count
executions over both processes.

The checkpointer is Cairn's `CairnSaver` (`cairn:ADDRESS`) or LangGraph's own
SQLite savers (`sqlite:PATH`: SqliteSaver for the sync scenarios,
AsyncSqliteSaver for the async ones).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import operator
import os
import pathlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.func import entrypoint, task
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from cairn.langgraph import CairnSaver

LOG: pathlib.Path
SYNC = ("graph", "functional")
ASYNC = ("graph_async", "functional_async")
INPUTS = {"graph": {"topic": "otters", "notes": []}, "functional": "otters"}
RESUMES = {"graph": "approved", "functional": "publish it"}


def record(scenario: str, name: str) -> None:
    with LOG.open("a") as handle:
        handle.write(f"{scenario} {name}\n")


class State(TypedDict):
    topic: str
    notes: Annotated[list[str], operator.add]
    verdict: str
    report: str


def make_graph(scenario: str, checkpointer: BaseCheckpointSaver[Any]) -> Any:
    def plan(state: State) -> dict[str, Any]:
        record(scenario, "plan")
        return {"notes": [f"plan for {state['topic']}"]}

    def research(state: State) -> dict[str, Any]:
        record(scenario, "research")
        return {"notes": [f"facts about {state['topic']}"]}

    def review(state: State) -> dict[str, Any]:
        record(scenario, "review")
        verdict = interrupt({"question": "approve the plan?", "topic": state["topic"]})
        return {"verdict": verdict}

    def write(state: State) -> dict[str, Any]:
        record(scenario, "write")
        return {"report": f"{state['verdict']}: " + "; ".join(state["notes"])}

    builder = StateGraph(State)
    builder.add_node("plan", plan)
    builder.add_node("research", research)
    builder.add_node("review", review)
    builder.add_node("write", write)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "research")
    builder.add_edge("plan", "review")
    builder.add_edge(["research", "review"], "write")
    builder.add_edge("write", END)
    return builder.compile(checkpointer=checkpointer)


def make_workflow(scenario: str, checkpointer: BaseCheckpointSaver[Any]) -> Any:
    @task
    def draft(topic: str) -> str:
        record(scenario, "draft")
        return f"a draft about {topic}"

    @task
    def publish(text: str) -> str:
        record(scenario, "publish")
        return text.upper()

    @entrypoint(checkpointer=checkpointer)
    def workflow(topic: str) -> dict[str, str]:
        record(scenario, "workflow")
        text = draft(topic).result()
        answer = interrupt({"question": "publish?", "draft": text})
        return {"draft": text, "answer": answer, "published": publish(text).result()}

    return workflow


def make_async_workflow(scenario: str, checkpointer: BaseCheckpointSaver[Any]) -> Any:
    @task
    async def draft(topic: str) -> str:
        record(scenario, "draft")
        return f"a draft about {topic}"

    @task
    async def publish(text: str) -> str:
        record(scenario, "publish")
        return text.upper()

    @entrypoint(checkpointer=checkpointer)
    async def workflow(topic: str) -> dict[str, str]:
        record(scenario, "workflow")
        text = await draft(topic)
        answer = interrupt({"question": "publish?", "draft": text})
        return {"draft": text, "answer": answer, "published": await publish(text)}

    return workflow


def build(scenario: str, checkpointer: BaseCheckpointSaver[Any]) -> Any:
    if scenario == "graph" or scenario == "graph_async":
        return make_graph(scenario, checkpointer)
    if scenario == "functional":
        return make_workflow(scenario, checkpointer)
    return make_async_workflow(scenario, checkpointer)


def jsonable(value: Any) -> Any:
    """Interrupt objects as their values; everything else is JSON already."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "value") and hasattr(value, "id"):  # langgraph.types.Interrupt
        return {"interrupt": jsonable(value.value)}
    return value


def config(scenario: str) -> Any:
    return {"configurable": {"thread_id": f"{scenario}-thread"}}


def report(app: Any, scenario: str, output: Any) -> dict[str, Any]:
    state = app.get_state(config(scenario))
    history = list(app.get_state_history(config(scenario)))
    return {
        "output": jsonable(output),
        "values": jsonable(state.values),
        "next": list(state.next),
        "interrupts": [jsonable(i.value) for i in state.interrupts],
        "history": [
            {"step": h.metadata["step"], "source": h.metadata["source"], "next": list(h.next)}
            for h in history
        ],
    }


async def areport(app: Any, scenario: str, output: Any) -> dict[str, Any]:
    state = await app.aget_state(config(scenario))
    history = [h async for h in app.aget_state_history(config(scenario))]
    return {
        "output": jsonable(output),
        "values": jsonable(state.values),
        "next": list(state.next),
        "interrupts": [jsonable(i.value) for i in state.interrupts],
        "history": [
            {"step": h.metadata["step"], "source": h.metadata["source"], "next": list(h.next)}
            for h in history
        ],
    }


def argument(scenario: str, phase: str) -> Any:
    kind = scenario.removesuffix("_async")
    return INPUTS[kind] if phase == "start" else Command(resume=RESUMES[kind])


def run_sync(saver: BaseCheckpointSaver[Any], phase: str) -> dict[str, Any]:
    results = {}
    for scenario in SYNC:
        app = build(scenario, saver)
        output = app.invoke(argument(scenario, phase), config(scenario))
        results[scenario] = report(app, scenario, output)
    return results


async def run_async(saver: BaseCheckpointSaver[Any], phase: str) -> dict[str, Any]:
    results = {}
    for scenario in ASYNC:
        app = build(scenario, saver)
        output = await app.ainvoke(argument(scenario, phase), config(scenario))
        results[scenario] = await areport(app, scenario, output)
    return results


@contextlib.contextmanager
def sync_saver(spec: str) -> Iterator[BaseCheckpointSaver[Any]]:
    kind, _, where = spec.partition(":")
    if kind == "cairn":
        with CairnSaver(where) as saver:
            yield saver
    else:
        from langgraph.checkpoint.sqlite import SqliteSaver

        with contextlib.closing(sqlite3.connect(where, check_same_thread=False)) as conn:
            yield SqliteSaver(conn)


@contextlib.asynccontextmanager
async def async_saver(spec: str) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    kind, _, where = spec.partition(":")
    if kind == "cairn":
        async with CairnSaver(where) as saver:
            yield saver
    else:
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with AsyncSqliteSaver.from_conn_string(where) as saver:
            yield saver


async def run_all_async(spec: str, phase: str) -> dict[str, Any]:
    async with async_saver(spec) as saver:
        return await run_async(saver, phase)


def main() -> None:
    global LOG
    parser = argparse.ArgumentParser()
    parser.add_argument("--saver", required=True, help="cairn:ADDRESS or sqlite:PATH")
    parser.add_argument("--phase", required=True, choices=["start", "resume"])
    parser.add_argument("--log", required=True, type=pathlib.Path)
    args = parser.parse_args()
    LOG = args.log
    with sync_saver(args.saver) as saver:
        results = run_sync(saver, args.phase)
    results.update(asyncio.run(run_all_async(args.saver, args.phase)))
    print(json.dumps({"pid": os.getpid(), "scenarios": results}, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
