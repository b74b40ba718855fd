"""One trace per agent run, across the client, the server and the worker
(issue 17): the client's span, the run's, each task's queue wait and
execution nest; a failure marks them; a resume, after an interrupt or after
a server restart, continues the same trace."""

from __future__ import annotations

import asyncio
import pathlib

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from cairn import (
    Client,
    Command,
    RunFailedError,
    RunState,
    SyncClient,
    Worker,
    entrypoint,
    interrupt,
    task,
)
from cairn_server.server import ServerConfig, create_server
from cairn_server.store.sqlite import SqliteStore
from tests.conftest import StartWorker
from tests.tracing.conftest import Spans, parent_of, span_id, trace_id

tracer = trace.get_tracer("tests.tracing")


@task
async def double(x: int) -> int:
    return x * 2


@entrypoint()
async def flow(x: int) -> int:
    return await double(x) + 1


@task
async def explode(x: int) -> int:
    raise ValueError(f"no {x}")


@entrypoint()
async def failing(x: int) -> int:
    return await explode(x)


@entrypoint()
async def ask(question: str) -> str:
    doubled = await double(2)
    answer = interrupt(question)
    return f"{answer} {doubled}"


async def test_client_run_queue_and_execution_spans_nest_in_one_trace(
    client: Client, start_worker: StartWorker, spans: Spans
) -> None:
    worker = await start_worker([flow, double], local_calls=False)
    with tracer.start_as_current_span("request") as request:
        run = await client.invoke(flow, 4, thread_id="t1")
    assert run.output == 9

    invoke = spans.one("cairn.invoke flow")
    run_span = spans.one("cairn.run flow")
    queued = {name: spans.one(f"cairn.task.queued {name}") for name in ("flow", "double")}
    executed = {name: spans.one(f"cairn.task {name}") for name in ("flow", "double")}
    everything = [invoke, run_span, *queued.values(), *executed.values()]
    assert {trace_id(s) for s in everything} == {request.get_span_context().trace_id}

    assert parent_of(invoke) == request.get_span_context().span_id
    assert invoke.kind is SpanKind.CLIENT
    assert invoke.attributes is not None and invoke.attributes["cairn.run_id"] == run.run_id
    assert parent_of(run_span) == span_id(invoke)
    assert (
        dict(run_span.attributes or {}).items()
        >= {
            "cairn.run_id": run.run_id,
            "cairn.thread_id": "t1",
            "cairn.namespace": "default",
            "cairn.target": "flow",
            "cairn.durability": "async",
            "cairn.state": "succeeded",
        }.items()
    )
    for name in ("flow", "double"):
        assert parent_of(queued[name]) == span_id(run_span)
        assert parent_of(executed[name]) == span_id(run_span)
        # The queue wait ends when the worker takes the task, before it runs.
        assert queued[name].end_time is not None and executed[name].start_time is not None
        assert queued[name].end_time <= executed[name].start_time
    attributes = dict(executed["flow"].attributes or {})
    assert attributes["cairn.task.kind"] == "entrypoint"
    assert attributes["cairn.run_id"] == run.run_id
    assert attributes["cairn.attempt"] == 1
    assert attributes["cairn.worker_id"] == worker.worker_id
    assert attributes["cairn.sdk.language"] == "python"
    assert dict(executed["double"].attributes or {})["cairn.task.kind"] == "task"
    # The run contains its tasks; the client's call contains the run.
    for inner, outer in [(run_span, invoke), *((s, run_span) for s in executed.values())]:
        assert outer.start_time is not None and inner.start_time is not None
        assert outer.end_time is not None and inner.end_time is not None
        assert outer.start_time <= inner.start_time and inner.end_time <= outer.end_time


async def test_a_local_call_nests_under_its_entrypoint(
    client: Client, start_worker: StartWorker, spans: Spans
) -> None:
    await start_worker([flow, double])  # the entrypoint runs `double` itself
    await client.invoke(flow, 1, thread_id="t1")
    entry, call = spans.one("cairn.task flow"), spans.one("cairn.task double")
    assert parent_of(call) == span_id(entry)
    assert trace_id(call) == trace_id(spans.one("cairn.invoke flow"))
    assert not spans.named("cairn.task.queued double")  # it never waited in the service


async def test_a_failure_marks_the_task_the_run_and_the_call(
    client: Client, start_worker: StartWorker, spans: Spans
) -> None:
    await start_worker([failing, explode], local_calls=False)
    with pytest.raises(RunFailedError):
        await client.invoke(failing, 3, thread_id="t1")
    failed = spans.one("cairn.task explode")
    assert failed.status.status_code is StatusCode.ERROR
    assert [e.attributes["exception.type"] for e in failed.events if e.attributes] == ["ValueError"]
    assert spans.one("cairn.run failing").status.status_code is StatusCode.ERROR
    assert spans.one("cairn.invoke failing").status.status_code is StatusCode.ERROR


async def test_a_resume_continues_the_trace_of_the_interrupted_run(
    client: Client, start_worker: StartWorker, spans: Spans
) -> None:
    await start_worker([ask, double], local_calls=False)
    with tracer.start_as_current_span("ask"):
        first = await client.invoke(ask, "ship it?", thread_id="t1")
    assert first.state is RunState.INTERRUPTED
    with tracer.start_as_current_span("answer") as answer:  # days later: another trace
        second = await client.invoke(ask, Command(resume="yes"), thread_id="t1")
    assert second.output == "yes 4"

    runs = {dict(s.attributes or {})["cairn.run_id"]: s for s in spans.named("cairn.run ask")}
    stopped, resumed = runs[first.run_id], runs[second.run_id]
    assert dict(stopped.attributes or {})["cairn.state"] == "interrupted"
    assert trace_id(resumed) == trace_id(stopped)
    assert parent_of(resumed) == span_id(stopped)
    # The resuming call is linked, not the parent.
    resume_call = next(
        s
        for s in spans.named("cairn.invoke ask")
        if parent_of(s) is not None
        and s.context is not None
        and s.context.trace_id == answer.get_span_context().trace_id
    )
    assert [link.context.span_id for link in resumed.links] == [span_id(resume_call)]
    # The resumed run's executions are in the first trace too.
    executions = [s for s in spans.named("cairn.task ask") if trace_id(s) == trace_id(stopped)]
    assert len(executions) == 2
    assert {parent_of(s) for s in executions} == {span_id(stopped), span_id(resumed)}


async def test_a_run_resumed_after_a_restart_continues_its_trace(
    tmp_path: pathlib.Path, spans: Spans
) -> None:
    gate = asyncio.Event()

    @task
    async def wait_for_gate(x: int) -> int:
        await gate.wait()
        return x

    @entrypoint()
    async def gated(x: int) -> int:
        return await wait_for_gate(x)

    url = f"sqlite:///{tmp_path / 'cairn.db'}"

    async def serve() -> tuple[object, str, Worker, asyncio.Task[None]]:
        server, port = await create_server(ServerConfig(address="127.0.0.1:0", store_url=url))
        address = f"127.0.0.1:{port}"
        worker = Worker(address, functions=[gated, wait_for_gate], local_calls=False)
        running = asyncio.ensure_future(worker.run())
        await asyncio.wait_for(worker.connected.wait(), 10)
        return server, address, worker, running

    server, address, worker, running = await serve()
    try:
        async with Client(address) as client:
            with tracer.start_as_current_span("request") as request:
                async for event in client.stream(gated, 5, thread_id="t1", stream_mode="tasks"):
                    if event.mode == "tasks" and event.data.get("name") == "wait_for_gate":
                        run_id = event.run_id
                        break
    finally:
        await worker.stop(grace=0)
        await server.stop(grace=0.2)  # type: ignore[attr-defined]
        running.cancel()
    first = spans.one("cairn.run gated")
    assert dict(first.attributes or {})["cairn.handed_over"] is True
    assert trace_id(first) == request.get_span_context().trace_id

    gate.set()
    server, address, worker, running = await serve()
    try:
        async with Client(address) as client:
            async for event in client.join(run_id):
                final = event.run or None
            assert final is not None and final.state is RunState.SUCCEEDED
    finally:
        await worker.stop(grace=1)
        await server.stop(grace=0.5)  # type: ignore[attr-defined]
        running.cancel()
    resumed = [s for s in spans.named("cairn.run gated") if s is not first and s != first]
    assert len(resumed) == 1
    assert trace_id(resumed[0]) == trace_id(first)
    assert parent_of(resumed[0]) == span_id(first)
    assert dict(resumed[0].attributes or {})["cairn.resumed"] is True
    later = [
        s
        for s in spans.named("cairn.task wait_for_gate")
        if s.start_time and resumed[0].start_time and s.start_time >= resumed[0].start_time
    ]
    assert later and all(trace_id(s) == trace_id(first) for s in later)
    # The context is stored with the run.
    store = SqliteStore.from_url(url)
    await store.open()
    try:
        stored = await store.get_run(run_id)
    finally:
        await store.close()
    assert stored is not None and stored.trace_context["traceparent"].split("-")[1] == format(
        trace_id(first), "032x"
    )


async def test_sync_client_spans_are_children_of_the_callers_span(
    address: str, start_worker: StartWorker, spans: Spans
) -> None:
    await start_worker([flow, double])

    def call() -> int:
        with tracer.start_as_current_span("script") as script, SyncClient(address) as client:
            run = client.invoke("flow", 2, thread_id="t-sync")
            assert parent_of(spans.one("cairn.invoke flow")) == script.get_span_context().span_id
            return int(run.output)

    assert await asyncio.to_thread(call) == 5
