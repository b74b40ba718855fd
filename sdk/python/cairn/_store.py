"""Store: the long-term memory store (StoreService), with LangGraph's
`BaseStore` methods.

Memories outlive threads: a task writes one in one thread and any run,
client or LangGraph app of the same namespace reads it later.

    store = client.store                      # or get_store() inside a task
    await store.aput(("users", "u-42"), "food", {"likes": "otters' fish"})
    item = await store.aget(("users", "u-42"), "food")
    found = await store.asearch(("users",), filter={"likes": {"$ne": None}})

Every method has a sync twin (`put`, `get`, `search`, `delete`,
`list_namespaces`, `batch`) for code that runs outside the store's event
loop: a sync task body, or a script with `SyncClient`. Inside an async task
or with the async `Client`, await the `a...` methods (a sync call there
would block the loop the call needs, so it raises RuntimeError).

Semantic search: give the store an index (`Worker(..., store_index=...)`,
`Client(..., store_index=...)`), as LangGraph's stores take one. Texts are
embedded here, on the caller's side, never by the service:

    client = Client(address, store_index={"embed": embed_texts, "dims": 256, "fields": ["text"]})
    await client.store.aput(("docs",), "d1", {"text": "otters hold hands"})
    results = await client.store.asearch(("docs",), query="sea mammals", limit=3)
    results[0].score   # cosine similarity, nearest first

TTL: `put(..., ttl=minutes)` makes an item expire that many minutes after
its last put (or refreshing read); `store_ttl={"default_ttl": minutes,
"refresh_on_read": bool}` sets the defaults, as LangGraph's TTLConfig.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any, Literal, TypeVar

import grpc
from google.protobuf.message import Message

from cairn._errors import from_rpc_error
from cairn._in_flight import InFlight
from cairn._store_index import StoreIndex
from cairn._store_types import (
    NOT_PROVIDED,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    NamespacePath,
    NotProvided,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)
from cairn._store_wire import Plan, check_labels, check_put_namespace
from cairn.v1 import store_service_pb2_grpc

T = TypeVar("T")
Call = Callable[[str, Message], Awaitable[Message]]
"""Makes one StoreService call: (rpc name, request) -> response; raises
CairnError on failure."""
Runner = Callable[[Coroutine[Any, Any, Any]], Any]

_TTL_SETTINGS = frozenset(
    {"default_ttl", "refresh_on_read", "sweep_interval_minutes", "omit_expired"}
)


def ttl_config(ttl: Mapping[str, Any] | None) -> dict[str, Any]:
    """A checked copy of LangGraph's TTLConfig. `sweep_interval_minutes` and
    `omit_expired` are accepted and have no effect: the service never
    returns an expired item and deletes them by itself."""
    config = dict(ttl or {})
    unknown = set(config) - _TTL_SETTINGS
    if unknown:
        raise ValueError(f"unknown ttl settings {sorted(unknown)}; use {sorted(_TTL_SETTINGS)}")
    default = config.get("default_ttl")
    if default is not None and (isinstance(default, bool) or not isinstance(default, int | float)):
        raise ValueError(f"default_ttl is in minutes (a number), not {default!r}")
    return config


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def stub_call(channel: grpc.aio.Channel) -> Call:
    """A Call over one channel, with no failover (a worker's connection)."""
    stub = store_service_pb2_grpc.StoreServiceStub(channel)

    async def call(rpc: str, request: Message) -> Message:
        try:
            response: Message = await getattr(stub, rpc)(request)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None
        return response

    return call


class Store:
    """The memory store of one Cairn namespace, with LangGraph's `BaseStore`
    methods. Get one from `client.store`, `SyncClient.store`, `get_store()`
    inside a task, entrypoint or graph node, or the `store` parameter of an
    entrypoint or node.

        @entrypoint()
        def chat(message: dict, *, store: Store) -> str:
            memory = store.get(("users", message["user"]), "profile")
            ...

    A store belongs to the event loop its connection runs on. Its async
    methods may be awaited on any loop (calls from another loop are handed
    to it); its sync methods may be called from any thread except that
    loop's own. Errors of the service raise `CairnError` subclasses, e.g.
    `InvalidArgumentError` for a bad filter; a namespace that breaks
    LangGraph's rules raises ValueError before anything is sent.
    """

    supports_ttl = True

    def __init__(
        self,
        call: Call,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        runner: Runner | None = None,
        index: Mapping[str, Any] | StoreIndex | None = None,
        ttl: Mapping[str, Any] | None = None,
    ) -> None:
        self._call = call
        self._in_flight = InFlight()
        self._loop = loop
        self._runner = runner
        self.index = index if isinstance(index, StoreIndex | None) else StoreIndex(index)
        """The semantic search settings (None: no semantic search)."""
        self.ttl_config = ttl_config(ttl)
        """LangGraph's TTLConfig: default_ttl (minutes), refresh_on_read."""

    def _run_with(self, runner: Runner) -> Store:
        """This store, its sync methods running their calls with `runner`
        (SyncClient's, which carries the caller's trace context)."""
        return Store(
            self._call, loop=self._loop, runner=runner, index=self.index, ttl=self.ttl_config
        )

    def __repr__(self) -> str:
        indexed = f" index={list(self.index.fields)}" if self.index else ""
        return f"<cairn.Store{indexed}>"

    # --- running on the store's loop ------------------------------------------------------

    async def _on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        home = self._loop
        if home is None or home is _running_loop():
            return await coroutine
        self._check_open(home, coroutine)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, home))

    def _blocking(self, coroutine: Coroutine[Any, Any, T]) -> T:
        home = self._loop
        if home is None:
            coroutine.close()
            raise RuntimeError(
                "this store was made outside an event loop and has no thread to block on: "
                "await its async methods (aget, aput, asearch, ...)"
            )
        if home is _running_loop():
            coroutine.close()
            raise RuntimeError(
                "a sync store call on the event loop would block the loop it needs: "
                "await store.aget/aput/asearch/adelete/alist_namespaces/abatch here"
            )
        self._check_open(home, coroutine)
        if self._runner is not None:
            result: T = self._runner(coroutine)
            return result
        return asyncio.run_coroutine_threadsafe(coroutine, home).result()

    @staticmethod
    def _check_open(home: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, Any]) -> None:
        if home.is_closed() or not home.is_running():
            coroutine.close()
            raise RuntimeError("the store's connection is closed (its client or worker stopped)")

    async def _batch(self, ops: list[Any]) -> list[Any]:
        plan = Plan(ops, self.index)
        documents: list[list[float]] = []
        queries: list[list[float]] = []
        if self.index is not None:
            documents = await self.index.aembed(plan.documents)
            queries = list(await asyncio.gather(*map(self.index.aembed_query, plan.queries)))
        async with self._in_flight.slot():
            responses = [
                await self._call(rpc, request) for rpc, request in plan.calls(documents, queries)
            ]
        return plan.results(responses)

    # --- batch ------------------------------------------------------------------------------

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run several operations (`GetOp`, `PutOp`, `SearchOp`,
        `ListNamespacesOp`, or LangGraph's own) in one call; one result per
        operation, in order. Reads see the store as it was before the batch,
        then the writes are applied in one transaction, in order (a batch of
        over 1000 operations goes as several calls of 1000)."""
        return await self._on_loop(self._batch(list(ops)))

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """`abatch`, blocking."""
        return self._blocking(self._batch(list(ops)))

    # --- the operations, as BaseStore's methods ------------------------------------------

    def _refresh(self, refresh_ttl: bool | None) -> bool:
        if refresh_ttl is not None:
            return refresh_ttl
        return bool(self.ttl_config.get("refresh_on_read", True))

    def _ttl(self, ttl: float | NotProvided | None) -> float | None:
        if isinstance(ttl, NotProvided):
            default: float | None = self.ttl_config.get("default_ttl")
            return default
        return ttl

    def _get_op(self, namespace: NamespacePath, key: str, refresh_ttl: bool | None) -> GetOp:
        check_labels(namespace)
        return GetOp(tuple(namespace), str(key), self._refresh(refresh_ttl))

    def _search_op(
        self,
        namespace_prefix: NamespacePath,
        query: str | None,
        filter: dict[str, Any] | None,
        limit: int,
        offset: int,
        refresh_ttl: bool | None,
    ) -> SearchOp:
        check_labels(namespace_prefix)
        return SearchOp(
            tuple(namespace_prefix), filter, limit, offset, query, self._refresh(refresh_ttl)
        )

    def _put_op(
        self,
        namespace: NamespacePath,
        key: str,
        value: Mapping[str, Any],
        index: Literal[False] | list[str] | None,
        ttl: float | NotProvided | None,
    ) -> PutOp:
        check_put_namespace(tuple(namespace))
        return PutOp(tuple(namespace), str(key), value, index, self._ttl(ttl))

    @staticmethod
    def _list_op(
        prefix: NamespacePath | None,
        suffix: NamespacePath | None,
        max_depth: int | None,
        limit: int,
        offset: int,
    ) -> ListNamespacesOp:
        conditions: list[MatchCondition] = []
        if prefix:
            check_labels(prefix)
            conditions.append(MatchCondition("prefix", tuple(prefix)))
        if suffix:
            check_labels(suffix)
            conditions.append(MatchCondition("suffix", tuple(suffix)))
        return ListNamespacesOp(tuple(conditions), max_depth, limit, offset)

    async def aget(
        self, namespace: NamespacePath, key: str, *, refresh_ttl: bool | None = None
    ) -> Item | None:
        """The item at `namespace` and `key`, or None. `refresh_ttl` (default:
        the ttl config's refresh_on_read, True) moves an expiring item's
        expiry to now + its ttl."""
        (item,) = await self.abatch([self._get_op(namespace, key, refresh_ttl)])
        assert item is None or isinstance(item, Item)
        return item

    def get(
        self, namespace: NamespacePath, key: str, *, refresh_ttl: bool | None = None
    ) -> Item | None:
        """`aget`, blocking."""
        (item,) = self.batch([self._get_op(namespace, key, refresh_ttl)])
        assert item is None or isinstance(item, Item)
        return item

    async def asearch(
        self,
        namespace_prefix: NamespacePath,
        /,
        *,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        refresh_ttl: bool | None = None,
    ) -> list[SearchItem]:
        """Items under `namespace_prefix` whose value matches `filter` (a
        value per top-level field, or {"$eq"|"$ne"|"$gt"|"$gte"|"$lt"|"$lte":
        value} or {"$in"|"$nin": [values]}), newest update first; with a
        `query` and an index, nearest first with their `score`. At most
        `limit` (up to 1000) after skipping `offset`.

            hits = await store.asearch(("docs",), query="otters", filter={"lang": "en"})
        """
        op = self._search_op(namespace_prefix, query, filter, limit, offset, refresh_ttl)
        (found,) = await self.abatch([op])
        assert isinstance(found, list)
        return found  # type: ignore[return-value]

    def search(
        self,
        namespace_prefix: NamespacePath,
        /,
        *,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        refresh_ttl: bool | None = None,
    ) -> list[SearchItem]:
        """`asearch`, blocking."""
        op = self._search_op(namespace_prefix, query, filter, limit, offset, refresh_ttl)
        (found,) = self.batch([op])
        assert isinstance(found, list)
        return found  # type: ignore[return-value]

    async def aput(
        self,
        namespace: NamespacePath,
        key: str,
        value: Mapping[str, Any],
        index: Literal[False] | list[str] | None = None,
        *,
        ttl: float | NotProvided | None = NOT_PROVIDED,
    ) -> None:
        """Create or replace the item at `namespace` and `key` (a JSON
        object). `index`: None embeds the index's fields, False nothing, a
        list these fields (ignored without an index). `ttl`: minutes the
        item lives after this put and each refreshing read (None: forever;
        default: the ttl config's default_ttl)."""
        await self.abatch([self._put_op(namespace, key, value, index, ttl)])

    def put(
        self,
        namespace: NamespacePath,
        key: str,
        value: Mapping[str, Any],
        index: Literal[False] | list[str] | None = None,
        *,
        ttl: float | NotProvided | None = NOT_PROVIDED,
    ) -> None:
        """`aput`, blocking."""
        self.batch([self._put_op(namespace, key, value, index, ttl)])

    async def adelete(self, namespace: NamespacePath, key: str) -> None:
        """Delete the item at `namespace` and `key` (nothing if there is none)."""
        check_labels(namespace)
        await self.abatch([PutOp(tuple(namespace), str(key), None)])

    def delete(self, namespace: NamespacePath, key: str) -> None:
        """`adelete`, blocking."""
        check_labels(namespace)
        self.batch([PutOp(tuple(namespace), str(key), None)])

    async def alist_namespaces(
        self,
        *,
        prefix: NamespacePath | None = None,
        suffix: NamespacePath | None = None,
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[NamespacePath]:
        """The namespace paths that hold items, sorted, that start with
        `prefix` and end with `suffix` ("*" matches any label), each cut to
        `max_depth` labels (paths that become equal are listed once).

            await store.alist_namespaces(prefix=("users",), max_depth=2)
            # [("users", "u-1"), ("users", "u-42")]
        """
        (paths,) = await self.abatch([self._list_op(prefix, suffix, max_depth, limit, offset)])
        assert isinstance(paths, list)
        return paths  # type: ignore[return-value]

    def list_namespaces(
        self,
        *,
        prefix: NamespacePath | None = None,
        suffix: NamespacePath | None = None,
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[NamespacePath]:
        """`alist_namespaces`, blocking."""
        (paths,) = self.batch([self._list_op(prefix, suffix, max_depth, limit, offset)])
        assert isinstance(paths, list)
        return paths  # type: ignore[return-value]
