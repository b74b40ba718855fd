"""A LangGraph application whose persistence is all Cairn's: CairnSaver as
its checkpointer and CairnStore as its store. test_memory_python.py runs it
as two processes:

    python tests/e2e/memory_lg_app.py --address 127.0.0.1:PORT --phase start --log FILE
    python tests/e2e/memory_lg_app.py --address 127.0.0.1:PORT --phase resume --log FILE

The graph: `remember` puts a memory into the store (its injected `store`
parameter), `ask` calls `interrupt()`, `recall` reads the memory back with
`get_store()`. Phase `start` runs it until the interrupt, sync (`invoke`)
and async (`ainvoke`), each on its own thread; phase `resume` answers with
`Command(resume=...)` and runs to the end, then a functional `@entrypoint`
on another thread reads the memory through its `store` parameter. Each
phase prints one JSON line; every node appends `<scenario> <node>` to --log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
from typing import Any, TypedDict

from langgraph.config import get_store
from langgraph.func import entrypoint
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore
from langgraph.types import Command, interrupt

from cairn.langgraph import CairnSaver, CairnStore

LOG: pathlib.Path
SCENARIOS = ("graph", "graph_async")


def record(scenario: str, name: str) -> None:
    with LOG.open("a") as handle:
        handle.write(f"{scenario} {name}\n")


class State(TypedDict, total=False):
    user: str
    verdict: str
    memory: str


def build(scenario: str, saver: CairnSaver, store: CairnStore) -> Any:
    def remember(state: State, *, store: BaseStore) -> dict[str, Any]:
        record(scenario, "remember")
        store.put(("users", state["user"]), scenario, {"text": f"{state['user']} likes otters"})
        return {}

    def ask(state: State) -> dict[str, Any]:
        record(scenario, "ask")
        return {"verdict": interrupt({"question": "keep this memory?", "user": state["user"]})}

    def recall(state: State) -> dict[str, Any]:
        record(scenario, "recall")
        item = get_store().get(("users", state["user"]), scenario)
        return {"memory": item.value["text"] if item else "forgotten"}

    builder = StateGraph(State)
    builder.add_node("remember", remember)
    builder.add_node("ask", ask)
    builder.add_node("recall", recall)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", "ask")
    builder.add_edge("ask", "recall")
    builder.add_edge("recall", END)
    return builder.compile(checkpointer=saver, store=store)


def lookup_workflow(saver: CairnSaver, store: CairnStore) -> Any:
    @entrypoint(checkpointer=saver, store=store)
    def lookup(user: str, *, store: BaseStore) -> dict[str, Any]:
        found = store.search(("users", user))
        return {"memories": sorted(item.value["text"] for item in found)}

    return lookup


def config(thread: str) -> Any:
    return {"configurable": {"thread_id": thread}}


def interrupts(output: dict[str, Any]) -> list[Any]:
    return [i.value for i in output.get("__interrupt__", [])]


def argument(phase: str) -> Any:
    return {"user": "ada"} if phase == "start" else Command(resume="keep")


def run_sync(address: str, phase: str) -> dict[str, Any]:
    with CairnSaver(address) as saver, CairnStore(address) as store:
        graph = build("graph", saver, store)
        output = graph.invoke(argument(phase), config("graph-1"))
        result: dict[str, Any] = {
            "interrupts": interrupts(output),
            "values": {k: v for k, v in output.items() if k != "__interrupt__"},
            "next": list(graph.get_state(config("graph-1")).next),
        }
        if phase == "resume":
            result["lookup"] = lookup_workflow(saver, store).invoke("ada", config("lookup-sync"))
        return result


async def run_async(address: str, phase: str) -> dict[str, Any]:
    async with CairnSaver(address) as saver, CairnStore(address) as store:
        graph = build("graph_async", saver, store)
        output = await graph.ainvoke(argument(phase), config("graph-async-1"))
        state = await graph.aget_state(config("graph-async-1"))
        return {
            "interrupts": interrupts(output),
            "values": {k: v for k, v in output.items() if k != "__interrupt__"},
            "next": list(state.next),
        }


def main() -> None:
    global LOG
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--phase", required=True, choices=["start", "resume"])
    parser.add_argument("--log", required=True, type=pathlib.Path)
    args = parser.parse_args()
    LOG = args.log
    results = {
        "graph": run_sync(args.address, args.phase),
        "graph_async": asyncio.run(run_async(args.address, args.phase)),
    }
    print(json.dumps({"pid": os.getpid(), "scenarios": results}, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
