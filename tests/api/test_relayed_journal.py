"""A paged journal through a relay (api/relay.py): two replicas on one
Postgres schema, the worker connected to replica A, the run owned by
replica B (its client calls B only). B sends the assignment to A's relay
stream in pages, A gathers it and pages it again to its worker.

Both replicas run with a 16 KiB payload limit, so that a journal of 300
results of 9 KB (2.7 MB) exceeds a Connect message (1 MiB + 32 KiB)."""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from cairn import Client, Command, RunState, Worker, entrypoint, interrupt, task
from cairn._values import to_value
from cairn.v1 import run_pb2, run_service_pb2_grpc, worker_service_pb2_grpc
from cairn.v1 import run_service_pb2 as rpb
from cairn.v1 import worker_service_pb2 as wpb
from cairn_server.api.message_sizes import max_message_bytes
from cairn_server.api.relay import batch
from cairn_server.server import CairnServer, ServerConfig, create_server
from tests import postgres
from tests.api.raw_journal import read, record_calls_then_interrupt

LIMIT = 16 * 1024
PIECES = 300
WAIT = 60.0

runs_of: collections.Counter[int] = collections.Counter()
_lock = threading.Lock()


def piece_value(i: int) -> dict[str, Any]:
    return {"i": i, "text": f"{i:05d}" + "x" * 9000}


@task
def relayed_piece(i: int) -> dict[str, Any]:
    with _lock:
        runs_of[i] += 1
    return piece_value(i)


@entrypoint()
def relayed_history(n: int) -> dict[str, Any]:
    results = [f.result() for f in [relayed_piece(i) for i in range(n)]]
    answer = interrupt({"recorded": len(results)})
    return {
        "answer": answer,
        "count": len(results),
        "whole": all(r == piece_value(i) for i, r in enumerate(results)),
    }


@asynccontextmanager
async def replicas(store_url: str, max_payload_bytes: int = LIMIT) -> AsyncIterator[list[str]]:
    """Replicas rB and rA (in that order) on `store_url`, with the small
    payload limit unless told; yields their addresses."""
    started: list[CairnServer] = []
    addresses = []
    try:
        for replica_id in ("rB", "rA"):
            config = ServerConfig(
                address="127.0.0.1:0",
                store_url=store_url,
                replica_id=replica_id,
                lease_ttl=5.0,
                max_payload_bytes=max_payload_bytes,
            )
            instance, port = await create_server(config)
            started.append(instance)
            addresses.append(f"127.0.0.1:{port}")
        yield addresses
    finally:
        for instance in reversed(started):
            await instance.stop(grace=0.5)


@pytest.fixture
def store_url() -> Any:
    with postgres.fresh_schema() as url:
        yield url


@pytest.mark.timeout(180)
async def test_a_paged_journal_resumes_through_a_relay(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cairn_server.api.workers")
    journal_bytes = sum(to_value(piece_value(i)).ByteSize() for i in range(PIECES))
    assert journal_bytes > 2 * max_message_bytes(LIMIT)
    runs_of.clear()
    async with replicas(store_url) as (b, a):
        worker = Worker(a, functions=[relayed_piece, relayed_history])  # to A only
        running = asyncio.ensure_future(worker.run())
        try:
            await asyncio.wait_for(worker.connected.wait(), 10)
            async with Client(b) as client:  # to B only
                first = await asyncio.wait_for(
                    client.invoke(relayed_history, PIECES, thread_id="relayed"), WAIT
                )
                assert first.state is RunState.INTERRUPTED, first.error
                assert runs_of == collections.Counter(range(PIECES))
                resumed = await asyncio.wait_for(
                    client.invoke(relayed_history, Command(resume="go"), thread_id="relayed"),
                    WAIT,
                )
                assert resumed.state is RunState.SUCCEEDED, resumed.error
                assert resumed.output == {"answer": "go", "count": PIECES, "whole": True}
            assert runs_of == collections.Counter(range(PIECES))  # none ran again
        finally:
            await worker.stop(grace=1)
            await asyncio.wait_for(running, 10)
        owners = postgres.query(store_url, "SELECT DISTINCT owner_id FROM runs")
        assert owners == [("rB",)]
    # B paged the journal to A's relay stream, and A to its worker.
    paged = [r.getMessage() for r in caplog.records if "'s journal in " in r.getMessage()]
    assert len(paged) == 2, paged


# --- a worker that reads no pages, behind a relay -----------------------------------------

CALLS = 150


def chunk(i: int) -> str:
    return f"{i:03d}" + "c" * 9000


def invoke(thread_id: str, **fields: Any) -> rpb.InvokeRequest:
    return rpb.InvokeRequest(
        thread_id=thread_id, target="raw_relayed", create_thread=True, **fields
    )


@pytest.mark.timeout(120)
async def test_a_relayed_journal_too_large_for_a_worker_fails_the_run_not_the_stream(
    store_url: str,
) -> None:
    async with (
        replicas(store_url) as (b, a),
        grpc.aio.insecure_channel(a) as to_a,
        grpc.aio.insecure_channel(b) as to_b,
    ):
        runs = run_service_pb2_grpc.RunServiceStub(to_b)
        call = worker_service_pb2_grpc.WorkerServiceStub(to_a).Connect()
        hello = wpb.WorkerHello(
            registrations=[
                wpb.Registration(name="raw_relayed", kind=wpb.TASK_KIND_ENTRYPOINT),
                wpb.Registration(name="raw_chunk", kind=wpb.TASK_KIND_TASK),
            ],
            sdk_language="raw",
            accepts_journal_pages=False,
        )
        await call.write(wpb.ConnectRequest(hello=hello))
        assert not (await read(call)).welcome.sends_journal_pages
        try:
            # raw_relayed records CALLS results of raw_chunk, then interrupts.
            request = invoke("unpaged", input=to_value(0))
            await record_calls_then_interrupt(runs, call, request, calls=CALLS, chunk=chunk)

            # The resume's journal reaches A in pages and cannot go further.
            response = await asyncio.wait_for(
                runs.Invoke(invoke("unpaged", command=run_pb2.Command(resume=to_value("go")))),
                WAIT,
            )
            assert response.run.state == run_pb2.RUN_STATE_FAILED
            error = response.run.error
            assert error.type == "MessageTooLargeError" and not error.retryable
            assert "accepts_journal_pages" in error.message
            assert f"at most {max_message_bytes(LIMIT)} bytes" in error.message

            # The stream stays open and serves B's next run.
            other = asyncio.ensure_future(runs.Invoke(invoke("next", input=to_value(1))))
            entry = (await read(call)).assignment
            assert entry.name == "raw_relayed" and entry.thread_id == "next"
            done = wpb.TaskCompleted(task_id=entry.task_id, result=to_value("ok"))
            await call.write(wpb.ConnectRequest(completed=done))
            finished = await asyncio.wait_for(other, WAIT)
            assert finished.run.state == run_pb2.RUN_STATE_SUCCEEDED
        finally:
            call.cancel()
        owners = postgres.query(store_url, "SELECT DISTINCT owner_id FROM runs")
        assert owners == [("rB",)]


# --- a message over gRPC's default limit, down a relay -----------------------------------

DEFAULT_LIMIT = 4 * 1024 * 1024
BIG = 3_000_000


@entrypoint()
def relayed_big_resume(text: str) -> dict[str, int]:
    answer = interrupt("send more")
    return {"input": len(text), "answer": len(answer)}


@pytest.mark.timeout(120)
async def test_a_relayed_assignment_over_4_mib_reaches_the_worker(store_url: str) -> None:
    """A resume assignment carries the input and the resume values, each
    within the payload limit (4 MiB by default), so it may reach 2 * 4 MiB:
    a relay stream reads messages as large as its owner sends (gRPC's
    default limit of 4 MiB would break the stream, and the owner would hand
    the task to it again and again)."""
    async with replicas(store_url, DEFAULT_LIMIT) as (b, a):
        worker = Worker(a, functions=[relayed_big_resume])
        running = asyncio.ensure_future(worker.run())
        try:
            await asyncio.wait_for(worker.connected.wait(), 10)
            async with Client(b) as client:
                first = await asyncio.wait_for(
                    client.invoke(relayed_big_resume, "i" * BIG, thread_id="big"), WAIT
                )
                assert first.state is RunState.INTERRUPTED, first.error
                resumed = await asyncio.wait_for(
                    client.invoke(relayed_big_resume, Command(resume="r" * BIG), thread_id="big"),
                    WAIT,
                )
                assert resumed.state is RunState.SUCCEEDED, resumed.error
                assert resumed.output == {"input": BIG, "answer": BIG}
        finally:
            await worker.stop(grace=1)
            await asyncio.wait_for(running, 10)


def test_a_relay_sends_reports_in_batches_within_the_owners_payload_limit() -> None:
    """What the workers here report about relayed tasks goes up in batches
    of at most max_payload_bytes (a report over it alone), in order, however
    many are ready: one message of all of them could exceed what the owner
    reads."""
    reports = [
        wpb.ConnectRequest(
            completed=wpb.TaskCompleted(task_id=f"t{i}", result=to_value(f"{i:03d}" + "r" * 3000))
        )
        for i in range(CALLS)
    ]
    alone = wpb.ConnectRequest(
        completed=wpb.TaskCompleted(task_id="large", result=to_value("l" * 2 * LIMIT))
    )
    reports.insert(CALLS // 2, alone)
    ready: asyncio.Queue[wpb.ConnectRequest] = asyncio.Queue()
    for report in reports[1:]:
        ready.put_nowait(report)
    sent: list[wpb.ConnectRequest] = []
    first: wpb.ConnectRequest | None = reports[0]
    while first is not None:
        message, first = batch(first, ready, LIMIT)
        sent.append(message)
    assert ready.empty()
    unpacked = [
        request
        for message in sent
        for request in (message.batch.requests if message.HasField("batch") else [message])
    ]
    assert unpacked == reports
    assert alone in sent  # on its own
    # 450 KB of reports of 3 KB in batches of five (16 KiB), not one message.
    batches = [m for m in sent if m.HasField("batch")]
    assert all(m.ByteSize() <= LIMIT + 16 for m in batches)
    assert [len(m.batch.requests) for m in batches[:3]] == [5, 5, 5]
    assert len(sent) >= CALLS // 5 + 1
