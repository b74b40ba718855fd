"""GraphService.GetGraph through the real server: the graph a worker
registered, as Studio draws it, per namespace and after the worker left."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

import grpc
from google.protobuf import json_format

from cairn import END, START, RetryPolicy, StateGraph, entrypoint
from cairn.v1 import graph_service_pb2
from tests.api.conftest import Api
from tests.api.secured import WAIT, refused

gpb = graph_service_pb2


class Review(TypedDict):
    draft: str
    notes: Annotated[list, operator.add]


def write(state: Review) -> dict[str, Any]:
    return {"draft": state["draft"] + "!", "notes": ["written"]}


def check(state: Review) -> dict[str, Any]:
    return {"notes": ["checked"]}


def publish(state: Review) -> dict[str, Any]:
    return {"notes": ["published"]}


def route(state: Review) -> str:
    return "publish" if len(state["notes"]) > 2 else "write"


review = (
    StateGraph(Review)
    .add_node("write", write, retry_policy=RetryPolicy(max_attempts=3))
    .add_node("check", check)
    .add_node("publish", publish)
    .add_edge(START, "write")
    .add_edge("write", "check")
    .add_conditional_edges("check", route, {"publish": "publish", "write": "write"})
    .add_edge("publish", END)
    .compile(name="review", interrupt_before=["publish"])
)


@entrypoint()
def plain(x: int) -> int:
    return x


def other_namespace(name: str) -> list[tuple[str, str]]:
    return [("cairn-namespace", name)]


async def test_get_graph_returns_the_registered_spec(api: Api, start_worker: Any) -> None:
    await start_worker([review, plain])

    response = await api.graphs.GetGraph(gpb.GetGraphRequest(name="review"), timeout=WAIT)

    graph = json_format.MessageToDict(response.graph, preserving_proto_field_name=True)
    assert graph["name"] == "review"
    assert [n["name"] for n in graph["nodes"]] == ["write", "check", "publish"]
    assert graph["nodes"][0]["retry_policy"]["max_attempts"] == 3
    assert sorted((tuple(e["sources"]), e["target"]) for e in graph["edges"]) == [
        (("__start__",), "write"),
        (("publish",), "__end__"),
        (("write",), "check"),
    ]
    [branch] = graph["conditional_edges"]
    assert branch["source"] == "check"
    assert branch["path_map"] == {"publish": "publish", "write": "write"}
    assert graph["interrupt_before"] == ["publish"]
    assert {c["name"]: c.get("reducer") for c in graph["channels"]} == {
        "draft": "REDUCER_LAST_VALUE",
        "notes": "REDUCER_ADD",
    }


async def test_get_graph_refuses_what_is_not_a_graph_of_the_namespace(
    api: Api, start_worker: Any
) -> None:
    await start_worker([review, plain])

    for name in ("plain", "missing"):
        await refused(
            api.graphs.GetGraph(gpb.GetGraphRequest(name=name), timeout=WAIT),
            grpc.StatusCode.NOT_FOUND,
            "TARGET_NOT_FOUND",
        )
    await refused(
        api.graphs.GetGraph(
            gpb.GetGraphRequest(name="review"), metadata=other_namespace("team-b"), timeout=WAIT
        ),
        grpc.StatusCode.NOT_FOUND,
        "TARGET_NOT_FOUND",
    )
    await refused(
        api.graphs.GetGraph(gpb.GetGraphRequest(), timeout=WAIT),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )


async def test_a_graph_is_found_from_the_store_after_its_worker_left(
    api: Api, start_worker: Any, server: Any
) -> None:
    namespace = "team-a"
    worker = await start_worker([review], namespace=namespace)
    await worker.stop()
    # Another replica knows graphs only through the store: forget this one's.
    server[0].runs._graphs.clear()

    response = await api.graphs.GetGraph(
        gpb.GetGraphRequest(name="review"), metadata=other_namespace(namespace), timeout=WAIT
    )

    assert response.graph.name == "review"
    assert len(response.graph.nodes) == 3
