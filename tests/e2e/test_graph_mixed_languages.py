"""One graph, nodes in two languages: a real `cairn serve`, a real Node worker
(sdk/typescript/examples/graph_mixed_worker.ts) and a real Python worker
(sdk/typescript/examples/graph_mixed_python_worker.py), each a process.

The TypeScript worker registers `mixed_essay`, whose TypeScript nodes fan out
with Send and call a Python task, and whose `review` node is the graph
`py_review` that the Python worker registered: its Python nodes call a
TypeScript task and stop at an interrupt, answered with Command(resume=...).
A Python graph also calls a TypeScript graph from inside a node. Every node
and task writes a custom chunk {"ran", "language", "pid"}, so the test sees
where each one ran, and how many times.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from cairn import Client, Command, Run, RunState
from tests.e2e.processes import (
    TYPESCRIPT,
    Process,
    build_typescript,
    free_port,
    start_server,
    stopping,
)

PYTHON_WORKER = TYPESCRIPT / "examples" / "graph_mixed_python_worker.py"
NODE_WORKER = TYPESCRIPT / "dist" / "examples" / "graph_mixed_worker.js"


@pytest.fixture(scope="module", autouse=True)
def compiled_typescript() -> None:
    build_typescript()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Process, Process]]:
    """A server, then the Python worker (it registers `py_review`, which
    `mixed_essay` needs), then the Node worker."""
    folder = tmp_path_factory.mktemp("graph-mixed")
    port = free_port()
    address = f"127.0.0.1:{port}"
    server = start_server(folder / "cairn.db", port)
    with stopping(server):
        python = Process([sys.executable, str(PYTHON_WORKER), address]).start()
        with stopping(python):
            python.wait_for_line("python graph worker ready")
            node = Process(["node", str(NODE_WORKER), address]).start()
            with stopping(node):
                node.wait_for_line("typescript graph worker ready")
                yield address, python, node


async def run_streaming(
    client: Client, target: str, input: Any, thread_id: str
) -> tuple[Run, list[dict[str, Any]]]:
    """Stream a run with its subgraphs' chunks; its last state and the
    {"ran", "language", "pid"} chunks in order."""
    ran: list[dict[str, Any]] = []
    final = None
    async for event in client.stream(
        target,
        input,
        thread_id=thread_id,
        stream_mode="custom",
        durability="sync",
        subgraphs=True,
    ):
        if event.run is not None:
            final = event.run
        elif event.mode == "custom":
            ran.append(event.data)
    assert final is not None
    return final, ran


def where(ran: list[dict[str, Any]]) -> collections.Counter[tuple[str, str]]:
    return collections.Counter((chunk["ran"], chunk["language"]) for chunk in ran)


async def test_one_graph_runs_nodes_in_typescript_and_python(
    cluster: tuple[str, Process, Process],
) -> None:
    address, python, node = cluster
    async with Client(address) as client:
        run, ran = await run_streaming(client, "mixed_essay", {"topic": "owls"}, "mixed")
        assert run.state is RunState.INTERRUPTED
        draft = "An outline of owls: the history of owls; the science of owls"
        [pending] = run.interrupts
        assert pending.value == {"draft": draft, "words": 12, "asked_by": "python"}
        assert where(ran) == {
            ("plan", "typescript"): 1,
            ("research", "typescript"): 2,  # one per Send
            ("py_fact", "python"): 2,  # a Python task called by each TypeScript node
            ("write", "typescript"): 1,
            ("read", "python"): 1,  # the Python subgraph's nodes
            ("ts_word_count", "typescript"): 1,  # a TypeScript task called by a Python node
            ("decide", "python"): 1,
        }
        pids = {chunk["language"]: chunk["pid"] for chunk in ran}
        assert pids == {"typescript": node.pid, "python": python.pid}

        done, resumed = await run_streaming(
            client, "mixed_essay", Command(resume="approved"), "mixed"
        )
        assert done.state is RunState.SUCCEEDED
        # Only the node that stopped ran again, then the rest of the graph.
        assert where(resumed) == {("decide", "python"): 1, ("publish", "typescript"): 1}
        assert done.output == {
            "topic": "owls",
            "outline": "An outline of owls",
            "facts": ["the history of owls", "the science of owls"],
            "draft": draft,
            "words": 12,
            "verdict": "approved",
            "title": "OWLS",
        }
        state = await client.get_state("mixed")
        assert state.values == done.output
        assert state.next == ()


async def test_a_python_node_calls_a_typescript_graph(
    cluster: tuple[str, Process, Process],
) -> None:
    address, _, _ = cluster
    async with Client(address) as client:
        run, ran = await run_streaming(client, "py_headline", {"topic": "bats"}, "headline")
    assert run.state is RunState.SUCCEEDED
    assert run.output == {"topic": "bats", "headline": "All about bats (checked in Python)"}
    assert where(ran) == {("headline", "python"): 1, ("entitle", "typescript"): 1}
