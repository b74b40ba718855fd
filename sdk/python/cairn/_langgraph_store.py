"""CairnStore: Cairn's memory store as the `store` of a LangGraph application.

    from cairn.langgraph import CairnSaver, CairnStore

    with CairnSaver(address) as saver, CairnStore(address) as store:
        graph = builder.compile(checkpointer=saver, store=store)

It is a LangGraph `BaseStore` (sync `batch`, async `abatch`, and the
methods built on them) over StoreService: memories live in the Cairn
service, in the namespace of the credentials given, shared with native
Cairn tasks (`get_store()`) and clients (`client.store`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from operator import methodcaller

from langgraph.store.base import (
    BaseStore,
    IndexConfig,
    InvalidNamespaceError,
    Item,
    Op,
    Result,
    SearchItem,
    TTLConfig,
)

from cairn._addresses import Addresses, parse_addresses
from cairn._credentials import ConnectionSettings, TlsConfig
from cairn._failover_calls import ClosesCalls, FailoverCalls
from cairn._store import ttl_config
from cairn._store_index import StoreIndex
from cairn._store_types import from_timestamp
from cairn._store_wire import Plan
from cairn._values import struct_to_json
from cairn.v1 import store_pb2, store_service_pb2_grpc

log = logging.getLogger("cairn.langgraph")


def _item(message: store_pb2.Item) -> Item:
    return Item(
        value=struct_to_json(message.value, "value"),
        key=message.key,
        namespace=tuple(message.namespace),
        created_at=from_timestamp(message.create_time),
        updated_at=from_timestamp(message.update_time),
    )


def _search_item(message: store_pb2.SearchItem) -> SearchItem:
    found = message.item
    return SearchItem(
        namespace=tuple(found.namespace),
        key=found.key,
        value=struct_to_json(found.value, "value"),
        created_at=from_timestamp(found.create_time),
        updated_at=from_timestamp(found.update_time),
        score=message.score if message.HasField("score") else None,
    )


class CairnStore(ClosesCalls, BaseStore):
    """A LangGraph store backed by a Cairn server.

    `address` is one server or several replicas of one service (a sequence
    or a comma-separated string); a call whose server is unavailable is
    retried on the next address for up to `failover_timeout` seconds.
    `token` (a JWT) or `api_key`, `namespace` and `tls` are taken as by
    `cairn.Client` (each from its CAIRN_* environment variable when not
    given); the memories are those of that namespace, and writing them
    needs the `writer` (or `worker`) role there.

    `index` turns on semantic search as in LangGraph's stores: `embed` (an
    embedding function, sync or async, a LangChain `Embeddings`, or a
    "provider:model" string), `dims`, and the `fields` to embed (default
    "$", the whole value). Texts are embedded in this process; the service
    stores the vectors and ranks by cosine similarity. `ttl` is LangGraph's
    TTLConfig: `default_ttl` (minutes) for puts that give none, and
    `refresh_on_read` (default True). Expired items are never returned and
    are deleted by the service.

        store = CairnStore(
            "127.0.0.1:50051",
            index={"embed": embed_texts, "dims": 1536, "fields": ["text"]},
            ttl={"default_ttl": 60 * 24, "refresh_on_read": True},
        )
        store.put(("users", "u-42"), "m1", {"text": "likes otters"})
        store.search(("users", "u-42"), query="favourite animal")

    Sync methods use a blocking gRPC channel, async methods an asyncio one
    (opened on first use in the running loop). Close with `close()` /
    `aclose()` or use the store as a (async) context manager. A failed call
    raises the SDK's typed errors (`cairn.CairnError` subclasses); a
    namespace that breaks LangGraph's rules raises `InvalidNamespaceError`
    before anything is sent.
    """

    supports_ttl = True

    def __init__(
        self,
        address: Addresses = "127.0.0.1:50051",
        *,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        failover_timeout: float = 30.0,
        token: str | None = None,
        api_key: str | None = None,
        namespace: str | None = None,
        tls: bool | TlsConfig | None = None,
    ) -> None:
        self.addresses = parse_addresses(address)
        self.address = ",".join(self.addresses)
        settings = ConnectionSettings.resolve(
            token=token, api_key=api_key, namespace=namespace, tls=tls
        )
        self.namespace = settings.namespace
        self.index_config = index
        self._index = StoreIndex(index) if index is not None else None
        self.ttl_config = TTLConfig(**ttl_config(ttl)) if ttl is not None else None  # type: ignore[typeddict-item]
        self._calls = FailoverCalls(
            store_service_pb2_grpc.StoreServiceStub,
            settings,
            self.addresses,
            failover_timeout,
            log,
        )

    # --- BaseStore -------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        plan = Plan(ops, self._index, invalid=InvalidNamespaceError)
        documents: list[list[float]] = []
        queries: list[list[float]] = []
        if self._index is not None:
            documents = self._index.embed(plan.documents)
            queries = [self._index.embed_query(query) for query in plan.queries]
        responses = [
            self._calls.call(methodcaller(rpc, request))
            for rpc, request in plan.calls(documents, queries)
        ]
        return plan.results(responses, item=_item, search_item=_search_item)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        plan = Plan(ops, self._index, invalid=InvalidNamespaceError)
        documents: list[list[float]] = []
        queries: list[list[float]] = []
        if self._index is not None:
            documents = await self._index.aembed(plan.documents)
            queries = list(await asyncio.gather(*map(self._index.aembed_query, plan.queries)))
        responses = [
            await self._calls.acall(methodcaller(rpc, request))
            for rpc, request in plan.calls(documents, queries)
        ]
        return plan.results(responses, item=_item, search_item=_search_item)

    def __repr__(self) -> str:
        return f"CairnStore({self.address!r}, namespace={self.namespace!r})"


__all__ = ["CairnStore"]
