"""A worker process for the tests of what a run waits on.

It serves the entrypoints `greet` and `asks_missing`; the task
`missing_step`, which `asks_missing` calls, only with --serve-missing.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from cairn import Worker, entrypoint, remote_task, task

missing_step = remote_task("missing_step")


@entrypoint()
def greet(name: str) -> str:
    return f"hello {name}"


@entrypoint()
def asks_missing(topic: str) -> str:
    return str(missing_step(topic).result())


@task(name="missing_step")
def serve_missing_step(topic: str) -> str:
    return f"{topic} done"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--serve-missing", action="store_true")
    args = parser.parse_args()
    functions: list = [greet, asks_missing]
    if args.serve_missing:
        functions.append(serve_missing_step)
    worker = Worker(args.address, functions=functions)
    runner = asyncio.ensure_future(worker.run())
    await worker.connected.wait()
    print("worker ready", worker.worker_id, os.getpid(), flush=True)
    await runner


if __name__ == "__main__":
    asyncio.run(main())
