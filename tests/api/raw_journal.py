"""A worker in another language, as a raw Connect stream, recording a journal:
the helpers the journal-page tests share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from cairn._values import to_json, to_value
from cairn.v1 import run_pb2, run_service_pb2_grpc
from cairn.v1 import run_service_pb2 as rpb
from cairn.v1 import worker_service_pb2 as wpb

WAIT = 10.0


async def read(call: Any) -> wpb.ConnectResponse:
    message = await asyncio.wait_for(call.read(), WAIT)
    assert message is not None and message.WhichOneof("kind"), "the worker stream ended"
    return message


async def record_calls_then_interrupt(
    runs: run_service_pb2_grpc.RunServiceStub,
    call: Any,
    request: rpb.InvokeRequest,
    *,
    calls: int,
    chunk: Callable[[int], str],
) -> None:
    """Run `request`'s entrypoint to an interrupt after `calls` recorded calls
    of raw_chunk (whose result for input i is chunk(i)), this stream running
    both."""
    run = asyncio.ensure_future(runs.Invoke(request))
    entry = (await read(call)).assignment
    assert entry.name == request.target and not entry.journal
    for i in range(calls):
        schedule = wpb.ScheduleTask(
            parent_task_id=entry.task_id, index=i, name="raw_chunk", input=to_value(i)
        )
        await call.write(wpb.ConnectRequest(schedule=schedule))
    outcomes = 0
    while outcomes < calls:
        message = await read(call)
        if message.WhichOneof("kind") == "assignment":
            task = message.assignment
            result = to_value(chunk(int(to_json(task.input))))
            done = wpb.TaskCompleted(task_id=task.task_id, result=result)
            await call.write(wpb.ConnectRequest(completed=done))
        else:
            assert message.WhichOneof("kind") == "child_outcome", message
            outcomes += 1
    stop = wpb.TaskInterrupted(task_id=entry.task_id, index=0, value=to_value("wait"))
    await call.write(wpb.ConnectRequest(interrupted=stop))
    response = await asyncio.wait_for(run, WAIT)
    assert response.run.state == run_pb2.RUN_STATE_INTERRUPTED
