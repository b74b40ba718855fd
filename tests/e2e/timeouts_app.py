"""A worker process for the task timeout end-to-end tests.

`crawl` heartbeats its progress. Started with --hang, the worker's `crawl`
reports where it starts, heartbeats once and then goes silent for good (it
never answers and never heartbeats again), as a hung task does.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from cairn import (
    TaskTimeouts,
    Worker,
    entrypoint,
    get_heartbeat_details,
    get_stream_writer,
    heartbeat,
    task,
)

HANG = False


@task(timeouts=TaskTimeouts(heartbeat=1.0))
async def crawl(pages: int) -> dict[str, int]:
    start = get_heartbeat_details() or 0
    get_stream_writer()({"crawl_on": os.getpid(), "from": start})
    if HANG:
        heartbeat(2)  # two pages done, then silence
        await asyncio.Event().wait()
    for page in range(start, pages):
        heartbeat(page + 1)
        await asyncio.sleep(0.01)
    return {"pages": pages, "from": start, "pid": os.getpid()}


@entrypoint()
async def crawl_site(pages: int) -> dict[str, int]:
    return await crawl(pages)


async def main() -> None:
    global HANG
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--hang", action="store_true")
    args = parser.parse_args()
    HANG = args.hang
    worker = Worker(args.address, functions=[crawl, crawl_site])
    runner = asyncio.ensure_future(worker.run())
    await worker.connected.wait()
    print("worker ready", worker.worker_id, os.getpid(), flush=True)
    await runner


if __name__ == "__main__":
    asyncio.run(main())
