"""A Python worker process for the cross-language end-to-end tests.

It serves Python tasks that a TypeScript entrypoint calls, and Python
entrypoints that call tasks only the Node worker
(sdk/typescript/test/apps/worker_app.ts) serves. Each execution appends
`<event> <task name> <task id> <pid> python` to the --log file. With
--serve-shared it also serves `shared_step`, which the Node worker serves too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
from typing import Any

from cairn import (
    RetryPolicy,
    TaskFailedError,
    Worker,
    entrypoint,
    get_stream_writer,
    interrupt,
    remote_task,
    task,
)
from cairn._context import current

LOG: pathlib.Path


def record(event: str) -> None:
    execution = current()
    line = f"{event} {execution.assignment.name} {execution.task_id} {os.getpid()} python\n"
    with LOG.open("a") as handle:
        handle.write(line)


# --- tasks a TypeScript entrypoint calls ---------------------------------------------


@task
def py_summarize(text: str) -> str:
    record("start")
    get_stream_writer()({"from": "python", "summarizing": text})
    return f"summary of {text!r} by python"


# A ValueError is a programming error: not retried, whatever the policy says.
@task(retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=False))
def py_validate(value: int) -> int:
    record("start")
    if value < 0:
        raise ValueError(f"negative value: {value}")
    return value


flaky_calls = {"py_flaky": 0}


@task(retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=False))
def py_flaky(url: str) -> str:
    record("start")
    flaky_calls["py_flaky"] += 1
    if flaky_calls["py_flaky"] == 1:
        raise ConnectionError("connection reset")
    return f"fetched {url} by python"


@task
def py_ask(question: str) -> str:
    record("start")
    answer = interrupt({"asked_by": "python", "question": question})
    return f"{question} -> {answer}"


@task
def shared_step(job: str) -> str:
    record("start")
    get_stream_writer()({"started_on": os.getpid(), "language": "python", "task": "shared_step"})
    return f"{job} done by python {os.getpid()}"


# --- tasks only the Node worker serves --------------------------------------------------

ts_shout = remote_task("ts_shout")
ts_validate = remote_task("ts_validate")
ts_flaky = remote_task("ts_flaky")
ts_ask = remote_task("ts_ask")


@entrypoint()
def py_flow(words: list[str]) -> dict[str, Any]:
    writer = get_stream_writer()
    writer({"from": "python", "step": "start"})
    shouted = [ts_shout(word).result() for word in words]
    try:
        validation: Any = ts_validate(-1).result()
    except TaskFailedError as error:
        validation = {"type": error.type, "message": error.message}
    fetched = ts_flaky("example.com").result()
    answer = ts_ask("ship it?").result()
    return {"shouted": shouted, "validation": validation, "fetched": fetched, "answer": answer}


@entrypoint()
def py_call(request: dict[str, Any]) -> Any:
    """Calls the task named in the request (served by another process)."""
    return remote_task(request["task"])(request["input"]).result()


async def main() -> None:
    global LOG
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--log", required=True, type=pathlib.Path)
    parser.add_argument("--serve-shared", action="store_true")
    args = parser.parse_args()
    LOG = args.log
    functions: list[Any] = [py_summarize, py_validate, py_flaky, py_ask, py_flow, py_call]
    if args.serve_shared:
        functions.append(shared_step)
    worker = Worker(args.address, functions=functions)
    runner = asyncio.ensure_future(worker.run())
    await worker.connected.wait()
    print("worker ready", worker.worker_id, os.getpid(), flush=True)
    await runner


if __name__ == "__main__":
    asyncio.run(main())
