"""Bad graph specs are rejected when a worker registers them: the Connect
stream ends with INVALID_ARGUMENT and an ErrorInfo, the message names the
problem, and the server keeps serving (a good registration still works)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from cairn._errors import error_info
from cairn.v1 import graph_pb2, worker_service_pb2, worker_service_pb2_grpc

wpb = worker_service_pb2
WAIT = 10.0


@pytest.fixture
async def workers(address: str) -> AsyncIterator[worker_service_pb2_grpc.WorkerServiceStub]:
    async with grpc.aio.insecure_channel(address) as channel:
        yield worker_service_pb2_grpc.WorkerServiceStub(channel)


def spec(name: str = "g", **fields: object) -> graph_pb2.GraphSpec:
    """A graph a -> b -> END, changed by `fields`."""
    graph = graph_pb2.GraphSpec(
        name=name,
        channels=[graph_pb2.ChannelSpec(name="x")],
        nodes=[
            graph_pb2.NodeSpec(name="a", function=f"{name}:a"),
            graph_pb2.NodeSpec(name="b", function=f"{name}:b"),
        ],
        edges=[
            graph_pb2.EdgeSpec(sources=["__start__"], target="a"),
            graph_pb2.EdgeSpec(sources=["a"], target="b"),
            graph_pb2.EdgeSpec(sources=["b"], target="__end__"),
        ],
    )
    for field, value in fields.items():
        graph.ClearField(field)
        getattr(graph, field).extend(value)  # type: ignore[arg-type]
    return graph


def hello(*graphs: graph_pb2.GraphSpec, tasks: tuple[str, ...] | None = None) -> wpb.WorkerHello:
    names = tasks
    if names is None:
        names = tuple(
            n.function for g in graphs for n in g.nodes if n.WhichOneof("body") == "function"
        ) + tuple(e.router for g in graphs for e in g.conditional_edges)
    return wpb.WorkerHello(
        registrations=[
            *(wpb.Registration(name=g.name, kind=wpb.TASK_KIND_GRAPH, graph=g) for g in graphs),
            *(wpb.Registration(name=n, kind=wpb.TASK_KIND_TASK) for n in names),
        ]
    )


async def register(
    workers: worker_service_pb2_grpc.WorkerServiceStub, message: wpb.WorkerHello
) -> wpb.ConnectResponse:
    call = workers.Connect()
    try:
        await call.write(wpb.ConnectRequest(hello=message))
        return await asyncio.wait_for(call.read(), WAIT)
    finally:
        call.cancel()


BAD = {
    "edge to an unknown node": (
        hello(spec(edges=[graph_pb2.EdgeSpec(sources=["__start__"], target="nowhere")])),
        "edge to unknown node 'nowhere'",
    ),
    "unknown reducer": (
        hello(spec(channels=[graph_pb2.ChannelSpec(name="x", reducer=99)])),  # type: ignore[arg-type]
        "reducer",
    ),
    "unreachable END": (
        hello(
            spec(
                edges=[
                    graph_pb2.EdgeSpec(sources=["__start__"], target="a"),
                    graph_pb2.EdgeSpec(sources=["a"], target="b"),
                    graph_pb2.EdgeSpec(sources=["b"], target="a"),
                ]
            )
        ),
        "no path from __start__ reaches __end__",
    ),
    "a node no worker serves": (
        hello(spec(), tasks=("g:a",)),
        "no worker serves node 'b' (task 'g:b')",
    ),
    "a router no worker serves": (
        hello(
            spec(
                conditional_edges=[graph_pb2.ConditionalEdgeSpec(source="a", router="g:a:route0")]
            ),
            tasks=("g:a", "g:b"),
        ),
        "no worker serves the router after 'a'",
    ),
    "an unknown subgraph": (
        hello(spec(nodes=[graph_pb2.NodeSpec(name="a", subgraph="missing"), spec().nodes[1]])),
        "node 'a' runs unknown graph 'missing'",
    ),
    "subgraphs in a cycle": (
        hello(
            spec("p", nodes=[graph_pb2.NodeSpec(name="a", subgraph="q"), spec("p").nodes[1]]),
            spec("q", nodes=[graph_pb2.NodeSpec(name="a", subgraph="p"), spec("q").nodes[1]]),
        ),
        "contains itself through subgraphs: p -> q -> p",
    ),
    "a node with neither function nor subgraph": (
        hello(spec(nodes=[graph_pb2.NodeSpec(name="a"), spec().nodes[1]]), tasks=("g:b",)),
        "node 'a' needs a function or a subgraph",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
async def test_bad_graph_specs_are_invalid_argument_naming_the_problem(
    workers: worker_service_pb2_grpc.WorkerServiceStub, case: str
) -> None:
    message, expected = BAD[case]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await register(workers, message)
    error = caught.value
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert expected in (error.details() or "")
    info = error_info(error)
    assert info is not None and info.reason == "INVALID_ARGUMENT"
    # The server keeps serving: a good registration is welcomed.
    welcome = await register(workers, hello(spec("good")))
    assert welcome.WhichOneof("kind") == "welcome"
