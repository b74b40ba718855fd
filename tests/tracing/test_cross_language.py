"""One trace across languages: a Python entrypoint (an in-process worker)
calls a task only a TypeScript worker serves (a Node process). The Node
worker writes its spans as JSON lines to the file CAIRN_TEST_SPANS_FILE names
(sdk/typescript/test/apps/spans_file.ts); they are merged with the spans
this process exported, and nest as the Python ones do: client call, run,
the task's queue wait in the service and its execution in TypeScript."""

from __future__ import annotations

import asyncio
import json
import pathlib
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry import trace

from cairn import Client, Command, entrypoint, interrupt, remote_task
from tests.conftest import StartWorker
from tests.e2e.processes import NODE_WORKER_APP, Process, build_typescript, stopping
from tests.tracing.conftest import Spans, parent_of, span_id, trace_id

tracer = trace.get_tracer("tests.tracing")
ts_shout = remote_task("ts_shout")


@entrypoint()
async def shout_all(words: list[str]) -> list[str]:
    return [await ts_shout(word) for word in words]


@pytest.fixture(scope="module", autouse=True)
def compiled_typescript() -> None:
    if shutil.which("node") is None:
        pytest.skip("needs node")
    build_typescript()


@pytest.fixture
async def node_spans(address: str, tmp_path: pathlib.Path) -> AsyncIterator[pathlib.Path]:
    """A Node worker serving ts_shout, writing its spans to the returned file."""
    spans_file = tmp_path / "node-spans.jsonl"
    node = Process(
        ["node", str(NODE_WORKER_APP), "--address", address, "--log", str(tmp_path / "tasks.log")],
        env={"CAIRN_TEST_SPANS_FILE": str(spans_file)},
    )
    with stopping(node):
        # Waited for off the loop: the server it connects to runs on this loop.
        await asyncio.to_thread(node.start().wait_for_line, "worker ready")
        yield spans_file


def read_node_spans(path: pathlib.Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_a_typescript_task_joins_the_python_entrypoints_trace(
    client: Client, start_worker: StartWorker, node_spans: pathlib.Path, spans: Spans
) -> None:
    await start_worker([shout_all])
    with tracer.start_as_current_span("request") as request:
        run = await client.invoke(shout_all, ["hi", "yo"], thread_id="t1")
    assert run.output == ["HI", "YO"]

    trace_hex = format(request.get_span_context().trace_id, "032x")
    invoke, run_span = spans.one("cairn.invoke shout_all"), spans.one("cairn.run shout_all")
    assert parent_of(run_span) == span_id(invoke)
    assert trace_id(run_span) == request.get_span_context().trace_id
    entry = spans.one("cairn.task shout_all")
    assert parent_of(entry) == span_id(run_span)
    queued = spans.named("cairn.task.queued ts_shout")
    assert len(queued) == 2 and {parent_of(s) for s in queued} == {span_id(run_span)}

    executed = [s for s in read_node_spans(node_spans) if s["name"] == "cairn.task ts_shout"]
    assert len(executed) == 2
    run_hex = format(span_id(run_span), "016x")
    for span in executed:
        assert span["traceId"] == trace_hex
        assert span["parentSpanId"] == run_hex
        assert span["kind"] == "CONSUMER"
        assert span["attributes"]["cairn.run_id"] == run.run_id
        assert span["status"]["code"] != "ERROR"
    # (Times are not compared across the processes: Node's span clock is
    # performance.timeOrigin plus a monotonic offset, which drifts from the
    # wall clock Python's spans use by milliseconds.)


@entrypoint()
async def shout_then_ask(word: str) -> list[str]:
    first = await ts_shout(word)
    answer = interrupt({"first": first})
    return [first, await ts_shout(answer)]


async def test_a_resume_continues_the_trace_in_both_languages(
    client: Client, start_worker: StartWorker, node_spans: pathlib.Path, spans: Spans
) -> None:
    await start_worker([shout_then_ask])
    with tracer.start_as_current_span("request") as request:
        stopped = await client.invoke(shout_then_ask, "hi", thread_id="t2")
    assert [i.value for i in stopped.interrupts] == [{"first": "HI"}]
    with tracer.start_as_current_span("approval, later") as approval:
        resumed = await client.invoke(shout_then_ask, Command(resume="yo"), thread_id="t2")
    assert resumed.output == ["HI", "YO"]

    first_run, second_run = sorted(
        spans.named("cairn.run shout_then_ask"), key=lambda s: s.start_time or 0
    )
    original = request.get_span_context().trace_id
    assert trace_id(first_run) == trace_id(second_run) == original
    assert parent_of(second_run) == span_id(first_run)
    assert approval.get_span_context().trace_id != original  # the resume's own call
    executed = [s for s in read_node_spans(node_spans) if s["name"] == "cairn.task ts_shout"]
    # "hi" ran before the interrupt, "yo" after the resume (the replay
    # returned "HI" from the journal without running it again).
    by_run = {s["attributes"]["cairn.run_id"]: s for s in executed}
    assert set(by_run) == {stopped.run_id, resumed.run_id} and len(executed) == 2
    assert {s["traceId"] for s in executed} == {format(original, "032x")}
    assert by_run[resumed.run_id]["parentSpanId"] == format(span_id(second_run), "016x")
