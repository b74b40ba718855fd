"""The floor under one sequential step, measured on this machine.

    .venv/bin/python bench/floor.py [--round-trips 3000] [--commits 500]
        [--postgres postgresql://postgres@127.0.0.1:5432/test | --no-postgres] [--json FILE]

A sync step of a sequential run costs at least one exchange between the
worker and the server over their gRPC stream (the report goes up, the next
assignment comes down) and one commit of the step to the store. This
measures both parts alone, with the settings Cairn uses:

- echo: a bare bidirectional gRPC stream between this process and a second
  process (grpc.aio, uvloop on both sides, the server's options from
  `cairn_server.server.server_options` and the worker's channel options),
  one 200-byte message up and the same back per round trip, over TCP on
  127.0.0.1 and over a Unix domain socket;
- commit: `store.commit` of one step's WriteBatch (a checkpoint with the
  changed channels, a pending write, two events; the batch bench/history.py
  measures), on SQLite and on Postgres, with the number of statements the
  Postgres group commit sends for it (asyncpg's query logger).

The floor of a step is echo + commit. bench/run.py's sequential rows are
compared with it.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import grpc
import uvloop

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from cairn_runner import free_port
from history import Backend, Postgres, Sqlite, new_thread

from cairn._worker import CHANNEL_OPTIONS
from cairn_server.domain import ThreadRecord, ThreadStatus
from cairn_server.server import server_options
from cairn_server.store import Lease, WriteBatch, open_store

METHOD = "/floor.Echo/Chat"
PAYLOAD = os.urandom(200)


def identity(data: bytes) -> bytes:
    return data


async def serve_echo(address: str) -> None:
    async def chat(requests: AsyncIterator[bytes], _: Any) -> AsyncIterator[bytes]:
        async for request in requests:
            yield request

    handler = grpc.stream_stream_rpc_method_handler(
        chat, request_deserializer=identity, response_serializer=identity
    )
    server = grpc.aio.server(options=server_options(4 * 1024 * 1024))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("floor.Echo", {"Chat": handler}),)
    )
    server.add_insecure_port(address)
    await server.start()
    print("echo ready", flush=True)
    await server.wait_for_termination()


async def echo_round_trips(address: str, count: int) -> list[float]:
    async with grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        chat = channel.stream_stream(
            METHOD, request_serializer=identity, response_deserializer=identity
        )
        call = chat()
        seconds = []
        for n in range(count + 200):  # the first 200 warm up
            start = time.perf_counter()
            await call.write(PAYLOAD)
            reply = await call.read()
            if n >= 200:
                seconds.append(time.perf_counter() - start)
            assert reply == PAYLOAD
        await call.done_writing()
        return seconds


def measure_echo(address: str, count: int) -> list[float]:
    command = [sys.executable, __file__, "--echo-server", address]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        if "echo ready" not in server.stdout.readline():
            raise RuntimeError("the echo server did not start")
        return uvloop.run(echo_round_trips(address, count))
    finally:
        server.terminate()
        server.wait(10)


class StatementCount:
    """Counts the statements asyncpg sends on the store's connections."""

    def __init__(self) -> None:
        self.statements = 0

    def __call__(self, _: object) -> None:
        self.statements += 1

    def install(self) -> Callable[[], None]:
        create_pool = asyncpg.create_pool

        def counting(*args: Any, **kwargs: Any) -> Any:
            async def init(conn: asyncpg.Connection) -> None:
                conn.add_query_logger(self)

            return create_pool(*args, init=init, **kwargs)

        asyncpg.create_pool = counting
        return lambda: setattr(asyncpg, "create_pool", create_pool)


async def measure_commits(backend: Backend, count: int) -> dict[str, Any]:
    counter = StatementCount()
    restore = counter.install()
    try:
        async with backend.database() as url:
            store = open_store(url)
            await store.open()
            try:
                thread = new_thread()
                # A running run and its lease: every step is fenced, as a run's are.
                lease = Lease(thread.run.run_id, "bench", 1)
                now = time.time()
                row = ThreadRecord(thread.thread_id, now, now, {}, ThreadStatus.BUSY)
                await store.commit(WriteBatch(threads=[row], runs=[thread.run], lease=lease))
                for _ in range(50):  # warm up
                    await store.commit(fenced(thread.step(), lease))
                seconds = []
                before = counter.statements
                for _ in range(count):
                    batch = fenced(thread.step(), lease)
                    start = time.perf_counter()
                    await store.commit(batch)
                    seconds.append(time.perf_counter() - start)
                statements = (counter.statements - before) / count
            finally:
                await store.close()
    finally:
        restore()
    report = spread(seconds)
    if backend.name == "postgres":
        report["statements_per_commit"] = round(statements, 2)
    return report


def fenced(batch: WriteBatch, lease: Lease) -> WriteBatch:
    batch.lease = lease
    return batch


def spread(seconds: list[float]) -> dict[str, Any]:
    ordered = sorted(seconds)
    return {
        "p50_us": round(statistics.median(ordered) * 1e6, 1),
        "mean_us": round(statistics.fmean(ordered) * 1e6, 1),
        "p90_us": round(ordered[int(0.9 * (len(ordered) - 1))] * 1e6, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--round-trips", type=int, default=3000)
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite's commit only")
    parser.add_argument("--json", type=pathlib.Path)
    parser.add_argument("--echo-server", metavar="ADDRESS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_server:
        uvloop.run(serve_echo(args.echo_server))
        return 0
    report: dict[str, Any] = {"cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        tcp = f"127.0.0.1:{free_port()}"
        report["echo_tcp"] = spread(measure_echo(tcp, args.round_trips))
        socket = f"unix:{tmp}/echo.sock"
        report["echo_unix"] = spread(measure_echo(socket, args.round_trips))
    backends: list[Backend] = [Sqlite()]
    if not args.no_postgres:
        backends.append(Postgres(args.postgres))
    for backend in backends:
        report[f"commit_{backend.name}"] = uvloop.run(measure_commits(backend, args.commits))
    for store in (b.name for b in backends):
        for transport in ("tcp", "unix"):
            floor = report[f"echo_{transport}"]["p50_us"] + report[f"commit_{store}"]["p50_us"]
            report[f"floor_{store}_{transport}_p50_us"] = round(floor, 1)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
