"""Time per sequential step of a functional workflow on Cairn.

    .venv/bin/python bench/steps.py [--runs 20] [--steps 100] [--durability sync]

Starts `cairn serve` on a fresh SQLite file and one worker, both as separate
processes on 127.0.0.1, then runs an entrypoint that calls a trivial task N
times in sequence, one run after the other. Prints the median and p99 time per
run and per step, and steps per second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from cairn import Client, Worker, entrypoint, task


@task
def step(i: int) -> int:
    return i + 1


@entrypoint()
def chain(n: int) -> int:
    value = 0
    for _ in range(n):
        value = step(value).result()
    return value


@entrypoint()
async def async_chain(n: int) -> int:
    value = 0
    for _ in range(n):
        value = await step(value)
    return value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(process: subprocess.Popen[str], needle: str) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if needle in line:
            return
    raise RuntimeError(f"process exited before printing {needle!r}")


async def serve_worker(address: str) -> None:
    worker = Worker(address, functions=[step, chain, async_chain])
    runner = asyncio.ensure_future(worker.run())
    await worker.connected.wait()
    print("worker ready", flush=True)
    await runner


async def measure(address: str, args: argparse.Namespace) -> None:
    async with Client(address) as client:
        await client.invoke(args.target, 3, thread_id="warmup", durability=args.durability)
        times = []
        for i in range(args.runs):
            start = time.perf_counter()
            run = await client.invoke(
                args.target, args.steps, thread_id=f"bench-{i}", durability=args.durability
            )
            times.append(time.perf_counter() - start)
            assert run.output == args.steps, run
    times.sort()
    median = statistics.median(times)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(
        f"{args.target} durability={args.durability} steps={args.steps} runs={args.runs}: "
        f"median {median * 1000:.1f} ms/run ({median / args.steps * 1000:.2f} ms/step), "
        f"p99 {p99 * 1000:.1f} ms/run, {args.steps / median:.0f} steps/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--durability", default="sync", choices=["sync", "async", "exit"])
    parser.add_argument("--target", default="chain", choices=["chain", "async_chain"])
    parser.add_argument("--worker", metavar="ADDRESS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(serve_worker(args.worker))
        return
    address = f"127.0.0.1:{free_port()}"
    cairn = pathlib.Path(sys.executable).with_name("cairn")
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [
                str(cairn),
                "serve",
                "--address",
                address,
                "--store",
                f"sqlite:///{tmp}/bench.db",
                "--log-level",
                "warning",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        worker = None
        try:
            wait_for(server, "cairn serving on")
            worker = subprocess.Popen(
                [sys.executable, __file__, "--worker", address], stdout=subprocess.PIPE, text=True
            )
            wait_for(worker, "worker ready")
            asyncio.run(measure(address, args))
        finally:
            for process in (worker, server):
                if process is not None and process.poll() is None:
                    os.kill(process.pid, signal.SIGTERM)
                    process.wait(10)


if __name__ == "__main__":
    main()
