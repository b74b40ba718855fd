"""The `cairn` command: serve, health, a clean exit on SIGTERM, and the
inspection commands (threads, state, history, runs)."""

from __future__ import annotations

import json
import pathlib
import subprocess
from typing import TypedDict

import pytest

from tests.e2e.processes import BIN, free_port, start_server


def health(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "cairn"), "health", "--address", f"127.0.0.1:{port}", "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_health_reports_serving_then_server_exits_cleanly_on_sigterm(
    tmp_path: pathlib.Path,
) -> None:
    port = free_port()
    server = start_server(tmp_path / "cli.db", port)
    try:
        checked = health(port)
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout.strip() == "SERVING"
    finally:
        assert server.stop() == 0
    assert (tmp_path / "cli.db").exists()
    down = health(port)
    assert down.returncode == 1
    assert "unhealthy: UNAVAILABLE" in down.stderr


def cairn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "cairn"), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_inspection_commands_show_native_and_langgraph_threads(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("langgraph")
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt

    from cairn import SyncClient
    from cairn.langgraph import CairnSaver

    class State(TypedDict):
        topic: str
        answer: str

    def ask(state: State) -> dict[str, str]:
        return {"answer": interrupt({"question": f"about {state['topic']}?"})}

    port = free_port()
    address = f"127.0.0.1:{port}"
    server = start_server(tmp_path / "cli.db", port)
    try:
        with SyncClient(address) as client:
            client.create_thread("native", metadata={"team": "a"})
        with CairnSaver(address) as saver:
            graph = StateGraph(State).add_node("ask", ask)
            graph.add_edge(START, "ask").add_edge("ask", END)
            app = graph.compile(checkpointer=saver)
            app.invoke({"topic": "cats"}, {"configurable": {"thread_id": "lg"}})

        threads = cairn("threads", "--address", address)
        assert threads.returncode == 0, threads.stderr
        lines = threads.stdout.splitlines()
        assert lines[0].split() == ["THREAD", "STATUS", "UPDATED", "METADATA"]
        assert [line.split()[:2] for line in lines[1:]] == [["lg", "idle"], ["native", "idle"]]
        assert '{"team":"a"}' in lines[2]

        state = cairn("state", "lg", "--address", address)
        assert state.returncode == 0, state.stderr
        assert "next        ask" in state.stdout
        assert '"topic": "cats"' in state.stdout
        assert "about cats?" in state.stdout

        history = cairn("history", "lg", "--address", address, "--json")
        assert history.returncode == 0, history.stderr
        records = json.loads(history.stdout)
        assert [r["metadata"]["step"] for r in records] == [0, -1]
        assert [r["next"] for r in records] == [["ask"], ["__start__"]]

        runs = cairn("runs", "native", "--address", address)
        assert runs.returncode == 0, runs.stderr
        assert runs.stdout.split() == ["RUN", "TARGET", "STATE", "CREATED", "OUTPUT", "/", "ERROR"]

        missing = cairn("state", "nope", "--address", address)
        assert missing.returncode == 1
        assert "THREAD_NOT_FOUND" in missing.stdout
    finally:
        assert server.stop() == 0
