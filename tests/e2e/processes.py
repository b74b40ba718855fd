"""Real `cairn serve` and worker processes for end-to-end tests.

Every process listens on 127.0.0.1 only and is stopped by its own PID.
"""

from __future__ import annotations

import collections
import contextlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cairn import Client, Run

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
WORKER_APP = pathlib.Path(__file__).with_name("worker_app.py")
CROSS_LANGUAGE_APP = pathlib.Path(__file__).with_name("cross_language_app.py")
NAMESPACED_APP = pathlib.Path(__file__).with_name("namespaced_app.py")
TYPESCRIPT = ROOT / "sdk" / "typescript"
NODE_WORKER_APP = TYPESCRIPT / "dist" / "test" / "apps" / "worker_app.js"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    """A child process whose stdout lines are collected as they arrive."""

    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> Process:
        self.popen = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )
        threading.Thread(target=self._pump, daemon=True).start()
        return self

    def _pump(self) -> None:
        assert self.popen is not None and self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def wait_for_line(self, needle: str, timeout: float = 30.0) -> str:
        """Block until a stdout line contains `needle`."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(needle in line for line in self.lines) or self._exited(), timeout
            )
            match = next((line for line in self.lines if needle in line), None)
        if not found or match is None:
            raise AssertionError(
                f"{needle!r} not printed by {self.args}:\n" + "\n".join(self.lines)
            )
        return match

    def _exited(self) -> bool:
        return self.popen is not None and self.popen.poll() is not None

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.popen.returncode


def serve(store_url: str, port: int, *options: str, env: dict[str, str] | None = None) -> Process:
    """`cairn serve` on 127.0.0.1:`port` with `options` (and `env` added to
    its environment), once it serves."""
    return serve_on(f"127.0.0.1:{port}", store_url, *options, env=env)


def serve_on(
    address: str, store_url: str, *options: str, env: dict[str, str] | None = None
) -> Process:
    """`cairn serve --address <address>` with `options`, once it serves."""
    command = [str(BIN / "cairn"), "serve", "--address", address, "--store", store_url]
    process = Process([*command, *options, "--log-level", "info"], env=env or {}).start()
    process.wait_for_line("cairn serving on")
    return process


def start_server(db: pathlib.Path, port: int) -> Process:
    """`cairn serve` on a SQLite file."""
    return serve(f"sqlite:///{db}", port)


def start_worker(address: str, log: pathlib.Path, *extra: str) -> Process:
    """A worker process serving tests/e2e/worker_app.py's functions."""
    process = Process(
        [sys.executable, str(WORKER_APP), "--address", address, "--log", str(log), *extra]
    ).start()
    process.wait_for_line("worker ready")
    return process


def start_cross_language_worker(address: str, log: pathlib.Path, *extra: str) -> Process:
    """A Python worker serving tests/e2e/cross_language_app.py's functions."""
    process = Process(
        [sys.executable, str(CROSS_LANGUAGE_APP), "--address", address, "--log", str(log), *extra]
    ).start()
    process.wait_for_line("worker ready")
    return process


def start_namespaced_worker(address: str, log: pathlib.Path, label: str, *extra: str) -> Process:
    """A worker process serving tests/e2e/namespaced_app.py's `hello` and
    `greet`, their outputs marked `label`; `extra` gives its --namespace,
    --token-file, --ca, --cert and --key."""
    args = ["--address", address, "--log", str(log), "--label", label, *extra]
    process = Process([sys.executable, str(NAMESPACED_APP), *args]).start()
    process.wait_for_line("worker ready")
    return process


def build_typescript() -> None:
    """Compile the TypeScript SDK and its test apps (needs `npm ci` in sdk/typescript)."""
    tsc = TYPESCRIPT / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        raise AssertionError(f"{tsc} is missing: run `npm ci` in {TYPESCRIPT}")
    subprocess.run([str(tsc), "-p", "tsconfig.json"], cwd=TYPESCRIPT, check=True, timeout=300)


def start_node_worker(address: str, log: pathlib.Path) -> Process:
    """A Node worker serving sdk/typescript/test/apps/worker_app.ts's functions."""
    process = Process(["node", str(NODE_WORKER_APP), "--address", address, "--log", str(log)])
    process.start().wait_for_line("worker ready")
    return process


@contextlib.contextmanager
def stopping(*processes: Process) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            process.stop()


# --- what a worker_app did, and a run followed across a server restart -------------------------


def started_task_ids(log: pathlib.Path) -> collections.Counter[str]:
    """Executions started per task id, from a worker_app log."""
    lines = [line.split() for line in log.read_text().splitlines()]
    return collections.Counter(task_id for event, _name, task_id, _pid in lines if event == "start")


async def updates_until(
    client: Client, target: str, input: Any, *, thread_id: str, count: int, subgraphs: bool = False
) -> tuple[str, list[str]]:
    """Start a sync run and read its updates until `count` nodes finished
    (nodes inside a subgraph, with `subgraphs`); the run goes on without the
    client. Returns the run id and those nodes."""
    events = client.stream(
        target,
        input,
        thread_id=thread_id,
        durability="sync",
        stream_mode="updates",
        subgraphs=subgraphs,
    )
    run_id, finished = "", []
    async for event in events:
        if event.run is not None:
            run_id = event.run.run_id
        elif event.mode == "updates" and (event.namespace or not subgraphs):
            finished.extend(event.data)
            if len(finished) == count:
                break
    await events.aclose()
    return run_id, finished


async def final_run(client: Client, run_id: str) -> Run:
    """The run as it ended, joined from wherever its events stand."""
    return [e.run async for e in client.join(run_id) if e.run is not None][-1]
