"""WorkerService.ListWorkers pages through the workers connected to the
answering replica, in the order they connected, and refuses a page token it
did not issue."""

from __future__ import annotations

from typing import Any, TypedDict

import grpc
import pytest

from cairn import END, START, Client, StateGraph, entrypoint, task
from cairn.v1 import worker_service_pb2 as pb
from cairn.v1 import worker_service_pb2_grpc


@task
def fetch(url: str) -> str:
    return url


@entrypoint()
def crawl(url: str) -> str:
    return fetch(url).result()


async def test_pages_in_connection_order(address: str, start_worker: Any, client: Client) -> None:
    started = [
        await start_worker([fetch, crawl], worker_id=f"w{i}", max_concurrency=i + 1)
        for i in range(3)
    ]
    listed = await client.list_workers()
    assert [w.worker_id for w in listed] == [w.worker_id for w in started] == ["w0", "w1", "w2"]
    assert {w.replica_id for w in listed} == {listed[0].replica_id} != {""}
    assert [(w.tasks, w.entrypoints) for w in listed] == [(("fetch",), ("crawl",))] * 3
    assert [(w.max_concurrency, w.free_task_slots) for w in listed] == [(1, 1), (2, 2), (3, 3)]
    assert {w.sdk_language for w in listed} == {"python"}

    async with grpc.aio.insecure_channel(address) as channel:
        stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
        first = await stub.ListWorkers(pb.ListWorkersRequest(page_size=2))
        assert [w.worker_id for w in first.workers] == ["w0", "w1"]
        assert first.next_page_token
        rest = await stub.ListWorkers(
            pb.ListWorkersRequest(page_size=2, page_token=first.next_page_token)
        )
        assert [w.worker_id for w in rest.workers] == ["w2"]
        assert rest.next_page_token == ""
        for bad in (pb.ListWorkersRequest(page_token="nope"), pb.ListWorkersRequest(page_size=-1)):
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await stub.ListWorkers(bad)
            assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT


class Echo(TypedDict):
    text: str


def echo_node(state: Echo) -> dict[str, Any]:
    return {"text": state["text"]}


echo = (
    StateGraph(Echo)
    .add_node("say", echo_node)
    .add_edge(START, "say")
    .add_edge("say", END)
    .compile(name="echo")
)


async def test_a_graph_is_listed_by_its_name_beside_its_node_tasks(
    start_worker: Any, client: Client
) -> None:
    await start_worker([echo, crawl, fetch])

    [worker] = await client.list_workers()

    assert worker.graphs == ("echo",)
    assert worker.entrypoints == ("crawl",)
    assert set(worker.tasks) == {"fetch", "echo:say"}
