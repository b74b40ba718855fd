"""PruneThreads and the thread TTL through the real server, on SQLite and on
Postgres: what a user sees in GetState, GetStateHistory and GetThread."""

from __future__ import annotations

import asyncio
import operator
import pathlib
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypedDict

import grpc
import pytest

from cairn import END, START, Client, Command, StateGraph, entrypoint, interrupt, task
from cairn.v1 import thread_service_pb2, thread_service_pb2_grpc
from cairn_server.server import CairnServer, ServerConfig, create_server
from tests import postgres
from tests.api.test_bad_input import WAIT, check_error

tpb = thread_service_pb2
TTL = 3600.0


class ChainState(TypedDict):
    value: int
    log: Annotated[list, operator.add]


def add_one(state: ChainState) -> dict:
    return {"value": state["value"] + 1, "log": ["a"]}


def double(state: ChainState) -> dict:
    return {"value": state["value"] * 2, "log": ["b"]}


chain = (
    StateGraph(ChainState)
    .add_node("a", add_one)
    .add_node("b", double)
    .add_edge(START, "a")
    .add_edge("a", "b")
    .add_edge("b", END)
    .compile(name="prune_chain")
)

gates: dict[str, asyncio.Event] = {}


@task
async def wait_for_release(x: int) -> int:
    await gates["release"].wait()
    return x


@entrypoint()
async def held(x: int) -> int:
    return await wait_for_release(x)


@entrypoint()
def ask(question: str) -> str:
    return str(interrupt(question))


@pytest.fixture(params=["sqlite", "postgres"])
async def server(
    request: pytest.FixtureRequest, db_path: pathlib.Path
) -> AsyncIterator[tuple[CairnServer, str]]:
    """The real server with a thread TTL, on each store."""
    url = f"sqlite:///{db_path}" if request.param == "sqlite" else postgres.create_schema()
    try:
        config = ServerConfig(address="127.0.0.1:0", store_url=url, thread_ttl=TTL)
        instance, port = await create_server(config)
        try:
            yield instance, f"127.0.0.1:{port}"
        finally:
            if "release" in gates:
                gates["release"].set()
            await instance.stop(grace=0.5)
    finally:
        if request.param == "postgres":
            postgres.drop_schema(url)


@pytest.fixture
async def threads(address: str) -> AsyncIterator[thread_service_pb2_grpc.ThreadServiceStub]:
    async with grpc.aio.insecure_channel(address) as channel:
        yield thread_service_pb2_grpc.ThreadServiceStub(channel)


@pytest.fixture
async def worker(start_worker: Any) -> None:
    gates["release"] = asyncio.Event()  # one per test: an Event belongs to one loop
    await start_worker([chain, held, wait_for_release, ask])


async def run_chain(client: Client, thread_id: str, times: int) -> None:
    for i in range(times):
        run = await client.invoke(chain, {"value": i, "log": []}, thread_id=thread_id)
        assert run.output["value"] == (i + 1) * 2


def prune(*thread_ids: str, strategy: int, keep_latest: int = 0) -> tpb.PruneThreadsRequest:
    return tpb.PruneThreadsRequest(
        thread_ids=thread_ids, strategy=strategy, keep_latest=keep_latest
    )


async def test_keep_latest_prunes_history_and_keeps_the_state(
    client: Client, threads: thread_service_pb2_grpc.ThreadServiceStub, worker: None
) -> None:
    await run_chain(client, "long", 3)
    await run_chain(client, "other", 1)
    state = await client.get_state("long")
    history = await client.get_state_history("long")
    assert len(history) == 12  # four checkpoints per run

    response = await threads.PruneThreads(
        prune("long", "missing", strategy=tpb.PRUNE_STRATEGY_KEEP_LATEST, keep_latest=2)
    )

    assert list(response.thread_ids) == ["long"]
    assert response.deleted_checkpoints == 10
    pruned = await client.get_state_history("long")
    assert [s.config for s in pruned] == [s.config for s in history[:2]]
    assert [s.values for s in pruned] == [s.values for s in history[:2]]
    assert await client.get_state("long") == state
    assert len(await client.get_state_history("other")) == 4
    # The thread goes on from its latest checkpoint.
    await run_chain(client, "long", 1)
    assert len(await client.get_state_history("long")) == 2 + 4

    # 0 means keep one.
    again = await threads.PruneThreads(prune("long", strategy=tpb.PRUNE_STRATEGY_KEEP_LATEST))
    assert again.deleted_checkpoints == 5
    assert len(await client.get_state_history("long")) == 1


async def test_delete_strategy_deletes_threads_whole(
    client: Client, threads: thread_service_pb2_grpc.ThreadServiceStub, worker: None
) -> None:
    await run_chain(client, "a", 1)
    await run_chain(client, "b", 2)
    await run_chain(client, "kept", 1)

    response = await threads.PruneThreads(
        prune("b", "a", "missing", strategy=tpb.PRUNE_STRATEGY_DELETE)
    )

    assert list(response.thread_ids) == ["b", "a"]
    assert response.deleted_checkpoints == 12
    for thread_id in ("a", "b"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await threads.GetThread(tpb.GetThreadRequest(thread_id=thread_id))
        check_error(caught.value, grpc.StatusCode.NOT_FOUND, "THREAD_NOT_FOUND", thread_id)
    assert len(await client.get_state_history("kept")) == 4
    # A retry changes nothing more.
    retry = await threads.PruneThreads(prune("b", "a", strategy=tpb.PRUNE_STRATEGY_DELETE))
    assert (list(retry.thread_ids), retry.deleted_checkpoints) == ([], 0)


BAD_REQUESTS = [
    (tpb.PruneThreadsRequest(strategy=tpb.PRUNE_STRATEGY_DELETE), "thread_ids"),
    (prune(*[f"t{i}" for i in range(1001)], strategy=tpb.PRUNE_STRATEGY_DELETE), "thread_ids"),
    (prune("t", "", strategy=tpb.PRUNE_STRATEGY_DELETE), "thread_ids"),
    (prune("t", strategy=tpb.PRUNE_STRATEGY_UNSPECIFIED), "strategy"),
    (prune("t", strategy=7), "strategy"),
    (prune("t", strategy=tpb.PRUNE_STRATEGY_KEEP_LATEST, keep_latest=-1), "keep_latest"),
    (prune("t", strategy=tpb.PRUNE_STRATEGY_DELETE, keep_latest=3), "keep_latest"),
]


@pytest.mark.parametrize(("request_", "field"), BAD_REQUESTS)
async def test_bad_prune_requests_are_invalid_argument_and_prune_nothing(
    client: Client,
    threads: thread_service_pb2_grpc.ThreadServiceStub,
    worker: None,
    request_: tpb.PruneThreadsRequest,
    field: str,
) -> None:
    await run_chain(client, "t", 2)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(threads.PruneThreads(request_), WAIT)

    info = check_error(caught.value, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert info.metadata["field"] == field
    assert len(await client.get_state_history("t")) == 8


async def test_pruning_a_thread_with_an_active_run_is_thread_busy(
    client: Client, threads: thread_service_pb2_grpc.ThreadServiceStub, worker: None
) -> None:
    await run_chain(client, "idle", 2)
    await client.create_thread(thread_id="busy")
    events = client.stream(held, 5, thread_id="busy", stream_mode="tasks")
    async for event in events:
        if event.data and event.data.get("name") == "wait_for_release":
            break  # the run is active and waits for the release

    for strategy in (tpb.PRUNE_STRATEGY_KEEP_LATEST, tpb.PRUNE_STRATEGY_DELETE):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await threads.PruneThreads(prune("idle", "busy", strategy=strategy))
        check_error(caught.value, grpc.StatusCode.FAILED_PRECONDITION, "THREAD_BUSY", "busy")
    assert len(await client.get_state_history("idle")) == 8
    gates["release"].set()
    finals = [e.run for e in [e async for e in events] if e.run is not None]
    assert finals and finals[-1].output == 5, finals[-1].error
    response = await threads.PruneThreads(prune("busy", strategy=tpb.PRUNE_STRATEGY_DELETE))
    assert list(response.thread_ids) == ["busy"]


async def test_thread_ttl_deletes_threads_not_updated_for_the_ttl(
    server: tuple[CairnServer, str], client: Client, worker: None
) -> None:
    instance = server[0]
    assert instance.sweeper is not None and instance.sweeper.ttl == TTL
    await run_chain(client, "finished", 1)
    interrupted = await client.invoke(ask, "color?", thread_id="interrupted")
    assert interrupted.interrupts
    now = time.time()

    assert await instance.sweeper.sweep(now=now) == []  # nothing is an hour old yet

    deleted = await instance.sweeper.sweep(now=now + TTL + 60)

    assert sorted(deleted) == ["finished", "interrupted"]
    assert await client.list_threads() == []


async def test_an_interrupted_run_resumes_after_its_thread_is_pruned(
    client: Client, threads: thread_service_pb2_grpc.ThreadServiceStub, worker: None
) -> None:
    await run_chain(client, "t", 2)  # history the prune can drop
    paused = await client.invoke(ask, "color?", thread_id="t", durability="sync")
    assert paused.interrupts

    response = await threads.PruneThreads(
        prune("t", strategy=tpb.PRUNE_STRATEGY_KEEP_LATEST, keep_latest=1)
    )

    assert response.deleted_checkpoints > 0
    done = await client.invoke(ask, Command(resume="blue"), thread_id="t")
    assert done.output == "blue"


async def test_the_sdk_prunes_and_deletes_threads(client: Client, worker: None) -> None:
    await run_chain(client, "sdk-keep", 3)
    await run_chain(client, "sdk-gone", 1)
    assert await client.prune_threads(["sdk-keep", "unknown"], keep_latest=2) == ["sdk-keep"]
    assert len(await client.get_state_history("sdk-keep")) == 2
    assert await client.prune_threads(["sdk-gone"], delete=True) == ["sdk-gone"]
    assert [t.thread_id for t in await client.list_threads()] == ["sdk-keep"]
    with pytest.raises(ValueError, match="keep_latest"):
        await client.prune_threads(["sdk-keep"], keep_latest=1, delete=True)
