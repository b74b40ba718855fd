"""ListRuns without a thread (DESIGN.md 4.2, 8.2) against the real server:
the runs of every thread of the caller's namespace, newest first, page by
page, filtered by state or to those that wait; never a run of another
namespace, though both use the same thread ids. A run of an entrypoint that
no connected worker serves is listed with `waiting` until a worker serving
it connects and runs it."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
from collections.abc import AsyncGenerator

import grpc

from cairn import Client, Run, RunState, Worker, entrypoint
from cairn.v1 import run_pb2, run_service_pb2
from tests.api.conftest import Api
from tests.api.secured import (
    ADMIN,
    WAIT,
    Metadata,
    Workers,
    as_caller,
    refused,
    secured_server,
    stubs,
    token,
)

rpb = run_service_pb2
A, B = "team-a", "team-b"


@entrypoint(name="echo")
def echo(text: str) -> str:
    return text


@entrypoint(name="greet")
def greet(name: str) -> str:
    return f"hello {name}"


def reader(namespace: str) -> Metadata:
    return as_caller(token(f"{namespace}-reader", f"{namespace}:reader"), namespace)


async def listed(
    api: Api, metadata: Metadata, page_size: int = 0, **filters: object
) -> list[list[run_pb2.Run]]:
    """Every page of ListRuns with an empty thread_id, following the tokens."""
    pages: list[list[run_pb2.Run]] = []
    page_token = ""
    while True:
        response = await api.runs.ListRuns(
            rpb.ListRunsRequest(page_size=page_size, page_token=page_token, **filters),  # type: ignore[arg-type]
            metadata=metadata,
            timeout=WAIT,
        )
        pages.append(list(response.runs))
        page_token = response.next_page_token
        if not page_token:
            return pages
        assert len(pages) < 100, "page tokens do not end"


async def ids(api: Api, metadata: Metadata, **filters: object) -> list[str]:
    return [r.run_id for page in await listed(api, metadata, **filters) for r in page]


async def register_then_leave(address: str, namespace: str, *functions: object) -> None:
    """A worker of `namespace` registers `functions` and disconnects: their
    names are known there, and no connected worker serves them."""
    worker = Worker(
        address,
        functions=functions,  # type: ignore[arg-type]
        token=token(f"{namespace}-worker", f"{namespace}:worker"),
        namespace=namespace,
    )
    running = asyncio.ensure_future(worker.run())
    await asyncio.wait_for(worker.connected.wait(), WAIT)
    await worker.stop(grace=1)
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(running, WAIT)


async def waiting_run(client: Client, thread_id: str) -> tuple[Run, AsyncGenerator[Run, None]]:
    """Start `greet` on `thread_id`; the run as its first lifecycle event that
    waits, and the lifecycle events after it (closing them ends the stream).
    Sync durability: a run's row is stored before its events are sent, so
    ListRuns reads what they say."""
    events = client.stream("greet", "ada", thread_id=thread_id, durability="sync")

    async def runs() -> AsyncGenerator[Run, None]:
        async with contextlib.aclosing(events):
            async for event in events:
                if event.run is not None:
                    yield event.run

    lifecycle = runs()

    async def first() -> Run:
        async for run in lifecycle:
            if run.waiting:
                return run
        raise AssertionError("the run ended without waiting")

    return await asyncio.wait_for(first(), WAIT * 3), lifecycle


async def test_runs_of_every_thread_of_the_callers_namespace_only(tmp_path: pathlib.Path) -> None:
    async with (
        secured_server(tmp_path) as served,
        stubs(served.address) as api,
        Client(served.address, token=token("a-app", f"{A}:writer"), namespace=A) as a,
        Client(served.address, token=token("b-app", f"{B}:writer"), namespace=B) as b,
    ):
        workers = Workers(served.address)
        try:
            for namespace in (A, B):
                await workers.start(
                    [echo],
                    token=token(f"{namespace}-w", f"{namespace}:worker"),
                    namespace=namespace,
                )
            mine = [await a.invoke(echo, "x", thread_id=t) for t in ("t1", "t2", "t1")]
            theirs = [await b.invoke(echo, "x", thread_id=t) for t in ("t1", "t2")]
        finally:
            await workers.stop_all()

        pages = await listed(api, reader(A), page_size=2)

        assert [len(page) for page in pages] == [2, 1]
        runs = [r for page in pages for r in page]
        assert [r.run_id for r in runs] == [r.run_id for r in reversed(mine)]
        assert [r.thread_id for r in runs] == ["t1", "t2", "t1"]  # unscoped
        assert await ids(api, reader(B)) == [r.run_id for r in reversed(theirs)]
        assert await ids(api, as_caller(ADMIN, "default")) == []
        assert await ids(api, reader(A), state=run_pb2.RUN_STATE_SUCCEEDED) == [
            r.run_id for r in reversed(mine)
        ]
        assert await ids(api, reader(A), state=run_pb2.RUN_STATE_RUNNING) == []
        assert await ids(api, reader(A), waiting=True) == []
        for bad in (
            rpb.ListRunsRequest(page_token="not-a-token"),
            rpb.ListRunsRequest(state=99),  # type: ignore[arg-type]
            rpb.ListRunsRequest(page_size=-1),
        ):
            await refused(
                api.runs.ListRuns(bad, metadata=reader(A)),
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_ARGUMENT",
            )
        # A thread's listing is as before.
        one = await api.runs.ListRuns(
            rpb.ListRunsRequest(thread_id="t2"), metadata=reader(B), timeout=WAIT
        )
        assert [r.run_id for r in one.runs] == [theirs[1].run_id]


async def test_a_run_waiting_for_a_worker_is_listed_as_waiting_until_one_runs_it(
    tmp_path: pathlib.Path,
) -> None:
    async with (
        secured_server(tmp_path) as served,
        stubs(served.address) as api,
        Client(served.address, token=token("a-app", f"{A}:writer"), namespace=A) as a,
        Client(served.address, token=token("b-app", f"{B}:writer"), namespace=B) as b,
    ):
        for namespace in (A, B):
            await register_then_leave(served.address, namespace, greet)
        run_a, after_a = await waiting_run(a, "w")
        run_b, after_b = await waiting_run(b, "w")  # the same thread id in team-b

        (waiting_a,) = (await listed(api, reader(A), waiting=True))[0]
        assert (waiting_a.run_id, waiting_a.thread_id) == (run_a.run_id, "w")
        assert [(w.reason, w.task_name) for w in waiting_a.waiting] == [
            (run_pb2.WAIT_REASON_NO_WORKER, "greet")
        ]
        assert await ids(api, reader(B), waiting=True) == [run_b.run_id]
        assert await ids(api, reader(A), waiting=True, state=run_pb2.RUN_STATE_RUNNING) == [
            run_a.run_id
        ]
        assert await ids(api, reader(A), waiting=True, state=run_pb2.RUN_STATE_PENDING) == []

        # A worker of team-a serving `greet` connects: team-a's run goes on
        # and ends; team-b's still waits for a worker of its own.
        workers = Workers(served.address)
        try:
            await workers.start([greet], token=token("a-w", f"{A}:worker"), namespace=A)
            ends = [r async for r in after_a]
            assert (ends[-1].state, ends[-1].output) == (RunState.SUCCEEDED, "hello ada")

            assert await ids(api, reader(A), waiting=True) == []
            (done,) = (await listed(api, reader(A)))[0]
            assert (done.run_id, done.state, list(done.waiting)) == (
                run_a.run_id,
                run_pb2.RUN_STATE_SUCCEEDED,
                [],
            )
            assert await ids(api, reader(B), waiting=True) == [run_b.run_id]
        finally:
            await after_b.aclose()
            await workers.stop_all()
