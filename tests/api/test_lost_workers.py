"""A task whose worker goes away every time it holds it is not handed out
for ever (engine/tasks.py MAX_LOSSES): here a worker in another language
that ignores Welcome.max_payload_bytes answers its assignment with a report
larger than the stream's message limit, so the service ends the stream each
time, as it would for a worker that crashes on the task."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from cairn._values import to_value
from cairn.v1 import run_pb2
from cairn.v1 import run_service_pb2 as rpb
from cairn.v1 import worker_service_pb2 as wpb
from cairn_server.api.message_sizes import max_message_bytes
from cairn_server.engine.tasks import MAX_LOSSES
from tests.api.conftest import LIMIT, Api

WAIT = 10.0


async def hold_and_break(api: Api) -> str:
    """Connect, take the assignment, answer it with a report over the
    stream's limit, and wait for the service to end the stream; the task id."""
    call = api.workers.Connect()
    hello = wpb.WorkerHello(
        registrations=[wpb.Registration(name="raw_big", kind=wpb.TASK_KIND_ENTRYPOINT)],
        sdk_language="raw",
    )
    await call.write(wpb.ConnectRequest(hello=hello))
    welcome = await asyncio.wait_for(call.read(), WAIT)
    assert welcome.welcome.max_payload_bytes == LIMIT
    message = await asyncio.wait_for(call.read(), WAIT)
    assignment = message.assignment
    assert assignment.name == "raw_big", message
    huge = "x" * (max_message_bytes(LIMIT) + 1024)
    completed = wpb.TaskCompleted(task_id=assignment.task_id, result=to_value(huge))
    try:
        await call.write(wpb.ConnectRequest(completed=completed))
        ended = await asyncio.wait_for(call.read(), WAIT)
    except grpc.aio.AioRpcError as error:
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, error
    else:
        assert ended is grpc.aio.EOF, ended
        assert await call.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    return assignment.task_id


async def test_a_task_whose_worker_breaks_each_time_fails_after_max_losses(api: Api) -> None:
    request = rpb.InvokeRequest(
        thread_id="poison", target="raw_big", create_thread=True, input=to_value(1)
    )
    run: Any = asyncio.ensure_future(api.runs.Invoke(request))
    held = {await hold_and_break(api) for _ in range(MAX_LOSSES)}
    assert len(held) == 1  # the same task, handed out again each time
    response = await asyncio.wait_for(run, WAIT)
    assert response.run.state == run_pb2.RUN_STATE_FAILED
    error = response.run.error
    assert error.type == "WorkerLostError" and not error.retryable
    assert f"{MAX_LOSSES} times" in error.message and "larger than" in error.message
