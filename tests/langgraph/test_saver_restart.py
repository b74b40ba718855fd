"""CairnSaver rides out a restart of its server, as the Client does: a call
made while the server is down or coming back waits for the reconnect
(within `failover_timeout`) instead of failing with UNAVAILABLE."""

from __future__ import annotations

import asyncio
import concurrent.futures
import pathlib
from typing import Any, TypedDict

import pytest

pytest.importorskip("langgraph")

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from cairn.langgraph import CairnSaver
from tests.e2e.processes import free_port, start_server


class State(TypedDict):
    topic: str
    verdict: str


def review(state: State) -> dict[str, str]:
    return {"verdict": interrupt({"question": f"publish {state['topic']}?"})}


def build(saver: CairnSaver) -> Any:
    graph = StateGraph(State).add_node("review", review)
    graph.add_edge(START, "review").add_edge("review", END)
    return graph.compile(checkpointer=saver)


def test_sync_saver_call_after_a_server_restart_succeeds(tmp_path: pathlib.Path) -> None:
    port = free_port()
    db = tmp_path / "saver.db"
    server = start_server(db, port)
    try:
        with CairnSaver(f"127.0.0.1:{port}") as saver:
            app = build(saver)
            config: Any = {"configurable": {"thread_id": "t"}}
            app.invoke({"topic": "cats"}, config)  # stops at the interrupt
            server.kill()
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                # Sent while nothing listens on the port: it waits for the
                # server started below.
                resumed = pool.submit(app.invoke, Command(resume="yes"), config)
                server = start_server(db, port)
                result = resumed.result(timeout=60)
            assert result == {"topic": "cats", "verdict": "yes"}
            assert app.get_state(config).next == ()
    finally:
        server.stop()


async def test_async_saver_call_after_a_server_restart_succeeds(tmp_path: pathlib.Path) -> None:
    port = free_port()
    db = tmp_path / "saver.db"
    server = start_server(db, port)
    try:
        async with CairnSaver(f"127.0.0.1:{port}") as saver:
            app = build(saver)
            config: Any = {"configurable": {"thread_id": "t"}}
            await app.ainvoke({"topic": "cats"}, config)
            server.kill()
            resumed = asyncio.ensure_future(app.ainvoke(Command(resume="yes"), config))
            server = await asyncio.to_thread(start_server, db, port)
            result = await asyncio.wait_for(resumed, 60)
            assert result == {"topic": "cats", "verdict": "yes"}
            assert (await app.aget_state(config)).next == ()
    finally:
        server.stop()
