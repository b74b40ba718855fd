"""A worker process for the failover tests: it connects to every address of
--address (comma-separated) and serves `gated_steps`, whose step `i` says it
is waiting, then waits until the test creates the file `open-<i>` in --gates.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import time

from cairn import Worker, entrypoint, get_stream_writer, task

GATES: pathlib.Path


@task
def gated_step(i: int) -> int:
    get_stream_writer()({"waiting": i, "pid": os.getpid()})
    gate = GATES / f"open-{i}"
    deadline = time.monotonic() + 60
    while not gate.exists():  # the test opens the gate from another process
        if time.monotonic() > deadline:
            raise TimeoutError(f"{gate} was never created")
        time.sleep(0.01)
    return i * 10


@entrypoint()
def gated_steps(n: int) -> int:
    return sum(gated_step(i).result() for i in range(n))


async def main() -> None:
    global GATES
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--gates", required=True, type=pathlib.Path)
    args = parser.parse_args()
    GATES = args.gates
    worker = Worker(args.address, functions=[gated_step, gated_steps], reconnect_max_interval=0.2)
    runner = asyncio.ensure_future(worker.run())
    await worker.connected.wait()
    print("worker ready", worker.worker_id, os.getpid(), flush=True)
    await runner


if __name__ == "__main__":
    asyncio.run(main())
