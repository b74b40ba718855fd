"""Time travel through CairnSaver: two branches forked from one checkpoint
keep their own values, as with LangGraph's InMemorySaver."""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

import pytest

pytest.importorskip("langgraph")

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from cairn.langgraph import CairnSaver


class State(TypedDict):
    topic: str
    verdict: str


def review(state: State) -> dict[str, str]:
    return {"verdict": interrupt("verdict?")}


def fork_twice(saver: BaseCheckpointSaver[Any]) -> tuple[Any, Any]:
    """Resume with "a", replay from the checkpoint before the review (a new
    branch that stops at the interrupt again), resume it with "b"."""
    graph = StateGraph(State).add_node("review", review)
    graph.add_edge(START, "review").add_edge("review", END)
    app = graph.compile(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": "fork"}}
    app.invoke({"topic": "cats"}, config)
    app.invoke(Command(resume="a"), config)
    [before] = [s for s in app.get_state_history(config) if s.next == ("review",)]
    app.invoke(None, before.config)
    result = app.invoke(Command(resume="b"), config)
    return result["verdict"], app.get_state(config).values["verdict"]


async def test_forks_keep_their_own_values(address: str) -> None:
    def through_cairn() -> tuple[Any, Any]:
        with CairnSaver(address) as saver:
            return fork_twice(saver)

    # The server runs on this loop; the blocking saver runs beside it.
    assert await asyncio.to_thread(through_cairn) == fork_twice(InMemorySaver()) == ("b", "b")
