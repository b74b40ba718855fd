"""StoreService through the real server: what a raw gRPC caller (grpcurl,
an SDK author) sees. Bad requests get INVALID_ARGUMENT or
RESOURCE_EXHAUSTED with the ErrorInfo naming the field (and the operation of
a batch), and change nothing; roles and namespaces hold for memories as for
threads. The semantics of each operation on both stores are the memory
conformance suite's (tests/memory)."""

from __future__ import annotations

import pathlib
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, json_format

from cairn._values import to_value
from cairn.v1 import store_pb2
from cairn.v1 import store_service_pb2 as spb
from tests.api.conftest import LIMIT, Api
from tests.api.secured import ADMIN, as_caller, refused, secured_server, stubs, token

INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_FOUND = grpc.StatusCode.NOT_FOUND


def struct(data: dict[str, Any]) -> Any:
    return to_value(data).struct_value


def put(namespace: list[str], key: str, value: dict[str, Any], **fields: Any) -> spb.PutItemRequest:
    return spb.PutItemRequest(namespace=namespace, key=key, value=struct(value), **fields)


async def everything(api: Api, metadata: Any = ()) -> list[dict[str, Any]]:
    found = await api.store.SearchItems(
        spb.SearchItemsRequest(limit=1000, refresh_ttl=False), metadata=metadata
    )
    return [json_format.MessageToDict(item) for item in found.items]


async def test_put_get_search_delete_round_trip(api: Api) -> None:
    stored = await api.store.PutItem(
        put(["users", "u-1"], "likes", {"food": "pizza"}, ttl=duration_pb2.Duration(seconds=3600))
    )
    assert list(stored.item.namespace) == ["users", "u-1"]
    assert stored.item.HasField("expire_time")
    got = await api.store.GetItem(spb.GetItemRequest(namespace=["users", "u-1"], key="likes"))
    assert json_format.MessageToDict(got.item.value) == {"food": "pizza"}
    assert got.item.create_time == stored.item.create_time

    missing = await api.store.GetItem(spb.GetItemRequest(namespace=["users", "u-1"], key="nope"))
    assert not missing.HasField("item")

    found = await api.store.SearchItems(spb.SearchItemsRequest(namespace_prefix=["users"]))
    assert [item.item.key for item in found.items] == ["likes"]
    assert not found.items[0].HasField("score")
    listed = await api.store.ListNamespaces(spb.ListNamespacesRequest())
    assert [list(path.labels) for path in listed.namespaces] == [["users", "u-1"]]

    deleted = await api.store.DeleteItem(
        spb.DeleteItemRequest(namespace=["users", "u-1"], key="likes")
    )
    assert deleted.deleted
    again = await api.store.DeleteItem(
        spb.DeleteItemRequest(namespace=["users", "u-1"], key="likes")
    )
    assert not again.deleted
    assert await everything(api) == []


async def test_a_query_vector_ranks_the_nearest_first(api: Api) -> None:
    vectors = {"north": [0.0, 1.0], "east": [1.0, 0.0], "north-east": [0.7, 0.7]}
    for key, values in vectors.items():
        await api.store.PutItem(
            put(
                ["places"],
                key,
                {"name": key},
                vectors=[store_pb2.ItemVector(path="name", values=values)],
            )
        )
    await api.store.PutItem(put(["places"], "unindexed", {"name": "nowhere"}))
    found = await api.store.SearchItems(
        spb.SearchItemsRequest(namespace_prefix=["places"], query_vector=[0.1, 1.0])
    )
    assert [item.item.key for item in found.items] == ["north", "north-east", "east", "unindexed"]
    scores = [item.score if item.HasField("score") else None for item in found.items]
    assert scores[0] == pytest.approx(1.0 / (1.01**0.5), abs=1e-5)
    assert scores[-1] is None
    assert scores[0] > scores[1] > scores[2]


async def test_a_batch_reads_before_it_writes(api: Api) -> None:
    key = {"namespace": ["notes"], "key": "k"}
    response = await api.store.BatchItems(
        spb.BatchItemsRequest(
            operations=[
                spb.StoreOperation(put=put(["notes"], "k", {"v": 1})),
                spb.StoreOperation(get=spb.GetItemRequest(**key)),
                spb.StoreOperation(put=put(["notes"], "k", {"v": 2})),
            ]
        )
    )
    kinds = [result.WhichOneof("result") for result in response.results]
    assert kinds == ["put", "get", "put"]
    assert not response.results[1].get.HasField("item")
    got = await api.store.GetItem(spb.GetItemRequest(**key))
    assert json_format.MessageToDict(got.item.value) == {"v": 2}


BAD: dict[str, tuple[Any, str, str]] = {
    "no namespace": (
        spb.PutItemRequest(key="k", value=struct({})),
        "INVALID_ARGUMENT",
        "namespace",
    ),
    "empty label": (put(["a", ""], "k", {}), "INVALID_ARGUMENT", "namespace"),
    "label with a period": (put(["a.b"], "k", {}), "INVALID_ARGUMENT", "namespace"),
    "reserved root": (put(["langgraph", "x"], "k", {}), "INVALID_ARGUMENT", "namespace"),
    "no key": (put(["a"], "", {}), "INVALID_ARGUMENT", "key"),
    "key with NUL": (put(["a"], "k\x00", {}), "INVALID_ARGUMENT", "key"),
    "label with NUL": (put(["a\x00"], "k", {}), "INVALID_ARGUMENT", "namespace"),
    "key too long": (put(["a"], "k" * 300, {}), "ID_TOO_LONG", "PutItemRequest.key"),
    "ttl under a second": (
        put(["a"], "k", {}, ttl=duration_pb2.Duration(nanos=5)),
        "INVALID_ARGUMENT",
        "ttl",
    ),
    "empty vector": (
        put(["a"], "k", {}, vectors=[store_pb2.ItemVector(path="text")]),
        "INVALID_ARGUMENT",
        "vectors[0].values",
    ),
    "vector not finite": (
        put(["a"], "k", {}, vectors=[store_pb2.ItemVector(path="t", values=[float("nan")])]),
        "INVALID_ARGUMENT",
        "vectors[0].values",
    ),
    "two vectors for one path": (
        put(
            ["a"],
            "k",
            {},
            vectors=[
                store_pb2.ItemVector(path="t", values=[1.0]),
                store_pb2.ItemVector(path="t", values=[2.0]),
            ],
        ),
        "INVALID_ARGUMENT",
        "vectors[1].path",
    ),
    "value over the payload limit": (
        put(["a"], "k", {"text": "x" * (LIMIT + 1)}),
        "PAYLOAD_TOO_LARGE",
        "value",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
async def test_bad_puts_are_refused_with_the_field(api: Api, case: str) -> None:
    request, reason, field = BAD[case]
    code = grpc.StatusCode.RESOURCE_EXHAUSTED if reason == "PAYLOAD_TOO_LARGE" else INVALID_ARGUMENT
    info = await refused(api.store.PutItem(request), code, reason)
    assert info.metadata["field"] == field
    assert await everything(api) == []


SEARCHES: dict[str, tuple[spb.SearchItemsRequest, str]] = {
    "negative limit": (spb.SearchItemsRequest(limit=-1), "limit"),
    "limit over 1000": (spb.SearchItemsRequest(limit=1001), "limit"),
    "negative offset": (spb.SearchItemsRequest(offset=-5), "offset"),
    "unknown operator": (spb.SearchItemsRequest(filter=struct({"n": {"$regex": "x"}})), "filter.n"),
    "$in without an array": (spb.SearchItemsRequest(filter=struct({"n": {"$in": 3}})), "filter.n"),
    "operators mixed with fields": (
        spb.SearchItemsRequest(filter=struct({"n": {"$gt": 1, "m": 2}})),
        "filter.n",
    ),
}


@pytest.mark.parametrize("case", list(SEARCHES))
async def test_bad_searches_are_refused_with_the_field(api: Api, case: str) -> None:
    request, field = SEARCHES[case]
    info = await refused(api.store.SearchItems(request), INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert info.metadata["field"] == field


async def test_a_batch_with_a_bad_operation_changes_nothing(api: Api) -> None:
    request = spb.BatchItemsRequest(
        operations=[
            spb.StoreOperation(put=put(["a"], "fine", {"v": 1})),
            spb.StoreOperation(put=put(["a"], "", {"v": 2})),
        ]
    )
    info = await refused(api.store.BatchItems(request), INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert info.metadata["operation"] == "1"
    assert info.metadata["field"] == "key"
    empty = spb.BatchItemsRequest(operations=[spb.StoreOperation()])
    info = await refused(api.store.BatchItems(empty), INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert info.metadata["operation"] == "0"
    await refused(
        api.store.BatchItems(spb.BatchItemsRequest()), INVALID_ARGUMENT, "INVALID_ARGUMENT"
    )
    assert await everything(api) == []


async def test_memories_stay_in_their_namespace_and_workers_may_use_them(
    tmp_path: pathlib.Path,
) -> None:
    async with secured_server(tmp_path) as served, stubs(served.address) as api:
        worker_a = as_caller(token("w", "team-a:worker"), "team-a")
        reader_a = as_caller(token("r", "team-a:reader"), "team-a")
        admin_b = as_caller(ADMIN, "team-b")
        await api.store.PutItem(
            put(["users", "u-1"], "likes", {"food": "pizza"}), metadata=worker_a
        )
        got = await api.store.GetItem(
            spb.GetItemRequest(namespace=["users", "u-1"], key="likes"), metadata=worker_a
        )
        assert json_format.MessageToDict(got.item.value) == {"food": "pizza"}

        # Another namespace's admin sees nothing of team-a's memories.
        other = await api.store.GetItem(
            spb.GetItemRequest(namespace=["users", "u-1"], key="likes"), metadata=admin_b
        )
        assert not other.HasField("item")
        assert await everything(api, admin_b) == []
        listed = await api.store.ListNamespaces(spb.ListNamespacesRequest(), metadata=admin_b)
        assert list(listed.namespaces) == []

        # A reader reads, but a batch that writes needs a writer or a worker.
        assert len(await everything(api, reader_a)) == 1
        writes = spb.BatchItemsRequest(
            operations=[
                spb.StoreOperation(
                    delete=spb.DeleteItemRequest(namespace=["users", "u-1"], key="likes")
                )
            ]
        )
        await refused(
            api.store.BatchItems(writes, metadata=reader_a), PERMISSION_DENIED, "PERMISSION_DENIED"
        )
        await refused(
            api.store.PutItem(put(["users"], "x", {}), metadata=reader_a),
            PERMISSION_DENIED,
            "PERMISSION_DENIED",
        )
        assert len(await everything(api, reader_a)) == 1
        done = await api.store.BatchItems(writes, metadata=worker_a)
        assert done.results[0].delete.deleted
        assert await everything(api, reader_a) == []
