"""A worker process for the tests of durable sleep.

`reminder(user)` drafts, sleeps an hour, then sends; `approval(item)` asks
for an approval that times out after an hour as "auto". Every execution of the
entrypoint's body and of the task is appended to --log as
"<what> <service clock time>", the clock read from CAIRN_CLOCK_FILE as the
server reads it, so a test sees what ran, how often, and when.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
from datetime import timedelta

import cairn
from cairn import Worker, entrypoint, interrupt, task
from cairn_server.timers import service_clock

HOUR = 3600.0
LOG: pathlib.Path | None = None
CLOCK = service_clock()


def note(what: str) -> None:
    assert LOG is not None
    with LOG.open("a") as log:
        log.write(f"{what} {CLOCK():.3f}\n")


@task
def step(what: str) -> str:
    note(what.replace(" ", "-"))
    return what.upper()


@entrypoint()
def reminder(user: str) -> list[str]:
    note("enter")
    draft = step(f"draft {user}").result()
    cairn.sleep(timedelta(hours=1))
    return [draft, step(f"send {user}").result()]


@entrypoint()
def approval(item: str) -> str:
    note("ask")
    return f"{item}: {interrupt('approve?', timeout=HOUR, default='auto')}"


async def main() -> None:
    global LOG
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    LOG = pathlib.Path(args.log)
    worker = Worker(args.address, functions=[reminder, step, approval])
    runner = asyncio.ensure_future(worker.run())
    await worker.connected.wait()
    print("worker ready", worker.worker_id, os.getpid(), flush=True)
    await runner


if __name__ == "__main__":
    asyncio.run(main())
