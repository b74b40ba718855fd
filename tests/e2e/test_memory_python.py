"""Long-term memory across processes, with a real `cairn serve`:

- a Cairn entrypoint writes memories in one thread on one worker process;
  after that worker and the server are restarted, an entrypoint on another
  worker process reads them in another thread (semantic search included);
- a LangGraph app with CairnSaver and CairnStore (tests/e2e/memory_lg_app.py)
  stops at an interrupt in one process and is resumed in another, which
  reads the memory the first one wrote.
"""

from __future__ import annotations

import collections
import json
import pathlib
import subprocess
import sys
from typing import Any

import pytest

from cairn import Client
from tests.e2e.processes import ROOT, Process, free_port, start_server, stopping

WORKER_APP = pathlib.Path(__file__).with_name("memory_worker_app.py")
LG_APP = pathlib.Path(__file__).with_name("memory_lg_app.py")


def start_memory_worker(address: str) -> Process:
    process = Process(
        [sys.executable, str(WORKER_APP), "--address", address], env={"PYTHONPATH": str(ROOT)}
    ).start()
    process.wait_for_line("worker ready")
    return process


MEMORIES = [
    {"user": "ada", "key": "m1", "text": "ada likes otters in the river"},
    {"user": "ada", "key": "m2", "text": "ada built a rocket to the moon"},
    {"user": "ada", "key": "m3", "text": "ada has a cat"},
]


async def test_a_memory_written_on_one_worker_is_read_on_another(tmp_path: pathlib.Path) -> None:
    db, port = tmp_path / "cairn.db", free_port()
    address = f"127.0.0.1:{port}"
    server = start_server(db, port)
    first = start_memory_worker(address)
    with stopping(first, server):
        async with Client(address) as client:
            run = await client.invoke("remember", MEMORIES, thread_id="t-1")
            assert run.output == {"pid": first.pid}
    # A new server on the same file, and a new worker process.
    server = start_server(db, port)
    second = start_memory_worker(address)
    with stopping(second, server):
        async with Client(address) as client:
            question = {"user": "ada", "query": "the moon and a rocket"}
            run = await client.invoke("recall", question, thread_id="t-2")
            assert run.output["pid"] == second.pid != first.pid
            assert run.output["memories"][0] == "ada built a rocket to the moon"
            assert sorted(run.output["memories"]) == sorted(m["text"] for m in MEMORIES)
            assert run.output["scored"] is True
            assert run.output["profile"] == {"memories": 3}
            assert await client.store.alist_namespaces(prefix=("users",)) == [
                ("users", "ada"),
                ("users", "ada", "memories"),
            ]


def run_lg_app(address: str, phase: str, log: pathlib.Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(LG_APP), "--address", address, "--phase", phase, "--log", str(log)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, f"{phase} failed:\n{done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def lg_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("memory_lg")
    port = free_port()
    server = start_server(tmp / "cairn.db", port)
    log = tmp / "nodes.log"
    try:
        start = run_lg_app(f"127.0.0.1:{port}", "start", log)
        resume = run_lg_app(f"127.0.0.1:{port}", "resume", log)
    finally:
        assert server.stop() == 0, "\n".join(server.lines)
    executions = collections.Counter(log.read_text().splitlines())
    return {"start": start, "resume": resume, "executions": executions}


@pytest.mark.parametrize("scenario", ["graph", "graph_async"])
def test_a_langgraph_app_with_cairn_saver_and_store_resumes_in_another_process(
    lg_results: dict[str, Any], scenario: str
) -> None:
    start, resume = lg_results["start"], lg_results["resume"]
    assert start["pid"] != resume["pid"]
    stopped = start["scenarios"][scenario]
    assert stopped["interrupts"] == [{"question": "keep this memory?", "user": "ada"}]
    assert stopped["next"] == ["ask"]
    finished = resume["scenarios"][scenario]
    assert finished["interrupts"] == []
    assert finished["next"] == []
    assert finished["values"] == {"user": "ada", "verdict": "keep", "memory": "ada likes otters"}
    # `remember` finished before the interrupt: the second process does not
    # run it again; the interrupted node runs again, as LangGraph specifies.
    counts = {
        line.split()[1]: n
        for line, n in lg_results["executions"].items()
        if line.split()[0] == scenario
    }
    assert counts == {"remember": 1, "ask": 2, "recall": 1}


def test_another_thread_reads_what_the_graph_remembered(lg_results: dict[str, Any]) -> None:
    lookup = lg_results["resume"]["scenarios"]["graph"]["lookup"]
    assert lookup == {"memories": ["ada likes otters", "ada likes otters"]}
