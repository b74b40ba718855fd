"""The `cairn` command: serve, health, a clean exit on SIGTERM, the
inspection commands (threads, state, history, runs, workers, memories),
cancel, and
what a person at the terminal sees: start-up errors, the store path, a
worker's "connected" line, a client waiting for its server."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import re
import subprocess
import sys
from typing import TypedDict

import pytest

import cairn as cairn_sdk
from cairn import Client
from tests.e2e.processes import (
    BIN,
    ROOT,
    Process,
    free_port,
    serve,
    start_server,
    start_worker,
)


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
        assert runs.stdout.split() == [
            "RUN", "TARGET", "STATE", "CREATED", "WAITING", "OUTPUT", "/", "ERROR"
        ]  # fmt: skip

        missing = cairn("state", "nope", "--address", address)
        assert missing.returncode == 1
        assert "THREAD_NOT_FOUND" in missing.stdout
    finally:
        assert server.stop() == 0


# --- cancel, workers, start-up errors and what the terminal shows ----------------------------


async def test_workers_lists_a_connected_worker_and_cancel_stops_its_run(
    tmp_path: pathlib.Path,
) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    server = start_server(tmp_path / "cli.db", port)
    log = tmp_path / "worker.log"
    worker = start_worker(address, log, "--max-concurrency", "3")
    _, _, worker_id, worker_pid = worker.wait_for_line("worker ready").split()
    try:
        idle = await asyncio.to_thread(cairn, "workers", "--address", address)
        assert idle.returncode == 0, idle.stderr
        lines = idle.stdout.splitlines()
        assert lines[0].split() == [
            "WORKER",
            "REPLICA",
            "SDK",
            "IDENTITY",
            "FREE",
            "TASK",
            "SLOTS",
            "FREE",
            "ENTRYPOINT",
            "SLOTS",
            "SERVES",
        ]
        row = lines[1]
        assert row.startswith(worker_id)
        assert f"python {cairn_sdk.__version__}" in row
        assert f"{worker_pid}@" in row
        assert "3 of 3" in row and "256 of 256" in row
        served = [line.split()[-2:] for line in lines[1:]]
        assert ["counted_steps", "(entrypoint)"] in served
        assert ["gated", "(task)"] in served

        async with Client(address) as client:
            job = {"key": "cancel", "steps": 1, "gate": 0}
            events = client.stream("counted_steps", job, thread_id="cancel-me", stream_mode="tasks")
            run_id = ""
            async for event in events:
                run_id = run_id or event.run_id
                if event.mode == "tasks" and event.data.get("name") == "gated":
                    break  # the entrypoint is held and its gated task runs
            await events.aclose()

            busy = await asyncio.to_thread(cairn, "workers", "--address", address, "--json")
            assert busy.returncode == 0, busy.stderr
            [record] = json.loads(busy.stdout)
            assert record["worker_id"] == worker_id
            assert record["free_entrypoint_slots"] == 255
            assert record["max_concurrency"] == 3

            cancelled = await asyncio.to_thread(cairn, "cancel", run_id, "--address", address)
            assert cancelled.returncode == 0, cancelled.stderr
            assert cancelled.stdout.strip() == f"run {run_id} cancelled"
            assert (await client.get_run(run_id)).state.value == "cancelled"

            # Cancelling it again is harmless: the run stays cancelled.
            again = await asyncio.to_thread(cairn, "cancel", run_id, "--address", address)
            assert again.returncode == 0, again.stderr
            assert again.stdout.strip() == f"run {run_id} cancelled"
    finally:
        log.with_suffix(".cancel.go").touch()  # lets the gated task's thread end
        worker.stop()
        assert server.stop() == 0


def test_workers_with_none_connected_says_so(tmp_path: pathlib.Path) -> None:
    port = free_port()
    server = start_server(tmp_path / "cli.db", port)
    try:
        listed = cairn("workers", "--address", f"127.0.0.1:{port}")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.strip() == f"no workers connected to 127.0.0.1:{port}"
    finally:
        assert server.stop() == 0


def test_memories_lists_items_and_namespaces_without_refreshing_ttls(
    tmp_path: pathlib.Path,
) -> None:
    from cairn import SyncClient

    port = free_port()
    address = f"127.0.0.1:{port}"
    server = start_server(tmp_path / "cli.db", port)
    try:
        with SyncClient(address) as client:
            client.store.put(("users", "u1"), "food", {"likes": "pizza", "kind": "taste"})
            client.store.put(("users", "u1", "pets"), "cat", {"name": "Tom", "kind": "pet"})
            client.store.put(("users", "u2"), "note", {"text": "brief"}, ttl=5)
            before = client.store.get(("users", "u2"), "note", refresh_ttl=False)
            assert before is not None and before.expires_at is not None

            listed = cairn("memories", "users", "--address", address)
            assert listed.returncode == 0, listed.stderr
            lines = listed.stdout.splitlines()
            assert lines[0].split() == ["NAMESPACE", "KEY", "UPDATED", "EXPIRES", "VALUE"]
            # Newest update first.
            assert [line.split()[:2] for line in lines[1:]] == [
                ["users/u2", "note"], ["users/u1/pets", "cat"], ["users/u1", "food"]
            ]  # fmt: skip

            pets = cairn("memories", "users", "--filter", '{"kind": "pet"}', "--json",
                         "--address", address)  # fmt: skip
            assert pets.returncode == 0, pets.stderr
            [record] = json.loads(pets.stdout)
            assert record["namespace"] == ["users", "u1", "pets"]
            assert record["value"] == {"name": "Tom", "kind": "pet"}

            namespaces = cairn("memories", "users", "--namespaces", "--address", address)
            assert namespaces.returncode == 0, namespaces.stderr
            assert namespaces.stdout.split() == [
                "NAMESPACE",
                "users/u1",
                "users/u1/pets",
                "users/u2",
            ]

            # Looking did not move the expiry.
            after = client.store.get(("users", "u2"), "note", refresh_ttl=False)
            assert after is not None and after.expires_at == before.expires_at

        bad = cairn("memories", "users", "--filter", '{"n": {"$regex": "x"}}', "--address", address)
        assert bad.returncode == 1
        assert bad.stdout.startswith("InvalidArgumentError: INVALID_ARGUMENT: filter.n has")
    finally:
        assert server.stop() == 0


def serve_once(*options: str) -> subprocess.CompletedProcess[str]:
    """`cairn serve` that is expected to stop by itself (it cannot start)."""
    return subprocess.run(
        [str(BIN / "cairn"), "serve", *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_start_up_errors_are_one_line(tmp_path: pathlib.Path) -> None:
    nobody = free_port()  # nothing listens there
    port = free_port()
    running = start_server(tmp_path / "first.db", port)
    try:
        cases = {
            "bad store URL": (["--store", "mysql://db/cairn"], "unsupported store URL"),
            "unreachable Postgres": (
                ["--store", f"postgresql://cairn@127.0.0.1:{nobody}/cairn"],
                "cannot connect to postgres",
            ),
            "address in use": (
                ["--address", f"127.0.0.1:{port}", "--store", f"sqlite:///{tmp_path}/second.db"],
                f"cannot listen on 127.0.0.1:{port}",
            ),
        }
        for case, (options, why) in cases.items():
            failed = serve_once("--address", f"127.0.0.1:{free_port()}", *options)
            assert failed.returncode == 1, case
            output = failed.stdout + failed.stderr
            assert "Traceback" not in output, case
            [line] = [line for line in output.splitlines() if line.startswith("cairn serve:")]
            assert why in line, (case, line)
            assert line == failed.stderr.splitlines()[-1], case
    finally:
        assert running.stop() == 0


def test_serve_prints_the_absolute_store_path_once(tmp_path: pathlib.Path) -> None:
    port = free_port()
    relative = os.path.relpath(tmp_path / "here.db", ROOT)  # the server runs in ROOT
    server = serve(f"sqlite:///{relative}", port)
    try:
        line = server.wait_for_line("cairn serving on")
        absolute = str((tmp_path / "here.db").resolve())
        assert line == f"cairn serving on 127.0.0.1:{port} (port {port}), store {absolute}"
        assert sum("here.db" in printed for printed in server.lines) == 1
    finally:
        assert server.stop() == 0


def test_worker_says_when_it_is_connected_and_what_it_serves(tmp_path: pathlib.Path) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    server = start_server(tmp_path / "cli.db", port)
    # The example's worker: Worker(...).run_sync() with no logging set up.
    worker = Process(
        [sys.executable, str(ROOT / "examples" / "essay.py"), "worker"],
        env={"CAIRN_ADDRESS": address},
    ).start()
    try:
        line = worker.wait_for_line(f"connected to {address}")
        assert "INFO cairn.worker" in line
        assert "serving entrypoints workflow; tasks write_essay (max_concurrency 16)" in line
    finally:
        assert worker.stop() == 0
        assert server.stop() == 0


def test_a_client_that_cannot_reach_the_server_says_what_it_waits_for() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    waited = cairn("threads", "--address", address, "--failover-timeout", "2.5")
    assert waited.returncode == 1
    assert "UnavailableError" in waited.stdout
    notices = [line for line in waited.stderr.splitlines() if "cannot reach" in line]
    assert notices == [
        f"cannot reach the Cairn server at {address}; retrying for up to 2.5 s"
        " (failover_timeout) in case it is restarting"
    ]


def test_no_grpc_core_log_lines_at_the_default_level() -> None:
    """A process using the SDK that forks (as multiprocessing does) while
    gRPC has threads gets no C-core INFO lines on stderr."""
    script = (
        "import os\n"
        "from cairn import SyncClient, UnavailableError\n"
        f"client = SyncClient('127.0.0.1:{free_port()}', failover_timeout=0.2)\n"
        "try:\n"
        "    client.list_threads()\n"
        "except UnavailableError:\n"
        "    pass\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "client.close()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"}
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert ran.returncode == 0, ran.stderr
    core_lines = [line for line in ran.stderr.splitlines() if re.match(r"[IWE]\d{4} ", line)]
    assert core_lines == []
