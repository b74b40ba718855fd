"""Store operations to StoreService calls and back, shared by `cairn.Store`
(Client, SyncClient, tasks) and `cairn.langgraph.CairnStore`.

A `Plan` checks a batch of operations as LangGraph's stores do, lists the
texts to embed (item fields and search queries, see _store_index.py), and,
given their vectors, the calls to make: the operation's own RPC for a batch
of one (GetItem, PutItem, ...), BatchItems for more, in chunks of at most
1000. Operations whose answer is known without asking (a search with
`limit=0`, a get at the empty path, list conditions that cannot match) are
answered here. Sync and async callers drive the same plan:

    plan = Plan(ops, index)
    vectors = index.embed(plan.documents) ...            # or await aembed
    responses = [call(rpc, request) for rpc, request in plan.calls(docs, queries)]
    results = plan.results(responses)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from google.protobuf import duration_pb2
from google.protobuf.message import Message

from cairn._store_index import StoreIndex, Vector
from cairn._store_types import Item, SearchItem
from cairn._values import to_struct
from cairn.v1 import store_pb2
from cairn.v1 import store_service_pb2 as pb

MAX_OPERATIONS = 1000
"""The most operations one BatchItems call takes."""
RESERVED_ROOT = "langgraph"

_RPC = {
    "get": "GetItem",
    "put": "PutItem",
    "delete": "DeleteItem",
    "search": "SearchItems",
    "list_namespaces": "ListNamespaces",
}

ItemFactory = Callable[[store_pb2.Item], Any]
SearchItemFactory = Callable[[store_pb2.SearchItem], Any]


# --- validation, as LangGraph's BaseStore ------------------------------------------------


def check_labels(labels: Iterable[Any], invalid: type[Exception] = ValueError) -> None:
    """Each label a non-empty string without "." or NUL."""
    labels = tuple(labels)
    for label in labels:
        if not isinstance(label, str):
            raise invalid(
                f"namespace label {label!r} in {labels} is a {type(label).__name__}, not a string"
            )
        if not label:
            raise invalid(f"namespace labels cannot be empty strings; got {labels}")
        if "." in label:
            raise invalid(f"namespace label {label!r} in {labels} contains a period ('.')")
        if "\x00" in label:
            raise invalid(f"namespace label {label!r} in {labels} contains a NUL byte")


def check_put_namespace(namespace: tuple[str, ...], invalid: type[Exception] = ValueError) -> None:
    """A put's path: at least one label, the first not "langgraph"."""
    if not namespace:
        raise invalid("namespace cannot be empty")
    check_labels(namespace, invalid)
    if namespace[0] == RESERVED_ROOT:
        raise invalid(f'the root label of a namespace cannot be "{RESERVED_ROOT}"; got {namespace}')


def _duration(minutes: float) -> duration_pb2.Duration:
    if isinstance(minutes, bool) or not isinstance(minutes, int | float):
        raise TypeError(f"ttl is in minutes (a number), not {minutes!r}")
    duration = duration_pb2.Duration()
    duration.FromTimedelta(timedelta(minutes=minutes))
    return duration


def _merge(patterns: Sequence[Sequence[str]]) -> list[str] | None:
    """One pattern that matches what every pattern matches (aligned at the
    start; "*" matches any label); None when none can."""
    merged: list[str] = []
    for pattern in patterns:
        for i, label in enumerate(pattern):
            if i == len(merged):
                merged.append(label)
            elif merged[i] == "*":
                merged[i] = label
            elif label not in ("*", merged[i]):
                return None
    return merged


# --- the plan -----------------------------------------------------------------------------


class _Put:
    """A put whose vectors come from `documents[start:start + len(paths)]`."""

    __slots__ = ("paths", "request", "start")

    def __init__(self, request: pb.PutItemRequest, paths: list[str], start: int) -> None:
        self.request = request
        self.paths = paths
        self.start = start


class Plan:
    """The calls that answer a batch of operations (see the module)."""

    def __init__(
        self,
        ops: Iterable[Any],
        index: StoreIndex | None,
        *,
        invalid: type[Exception] = ValueError,
    ) -> None:
        self._invalid = invalid
        self._index = index
        self._count = 0
        self._local: dict[int, Any] = {}
        self._wire: list[tuple[int, str]] = []  # (position, kind)
        self._operations: list[pb.StoreOperation] = []
        self._puts: list[_Put] = []
        self._searches: list[tuple[pb.SearchItemsRequest, int]] = []  # request, query index
        self.documents: list[str] = []
        """The item texts to embed, in order."""
        self.queries: list[str] = []
        """The distinct search queries to embed."""
        for position, op in enumerate(ops):
            self._count += 1
            self._add(position, op)

    def __len__(self) -> int:
        return self._count

    def _answer(self, position: int, result: Any) -> None:
        self._local[position] = result

    def _send(self, position: int, kind: str, request: Message) -> Any:
        """Add a call; returns the request as held in the plan (vectors are
        added to it later)."""
        self._wire.append((position, kind))
        operation = pb.StoreOperation()
        held = getattr(operation, kind)
        held.CopyFrom(request)
        self._operations.append(operation)
        return held

    def _add(self, position: int, op: Any) -> None:
        if hasattr(op, "match_conditions"):
            self._list(position, op)
        elif hasattr(op, "namespace_prefix"):
            self._search(position, op)
        elif hasattr(op, "value") and hasattr(op, "namespace"):
            self._put(position, op)
        elif hasattr(op, "namespace") and hasattr(op, "key"):
            namespace = tuple(op.namespace)
            check_labels(namespace, self._invalid)
            if not namespace:
                self._answer(position, None)  # nothing lives at the empty path
                return
            request = pb.GetItemRequest(
                namespace=namespace, key=str(op.key), refresh_ttl=bool(op.refresh_ttl)
            )
            self._send(position, "get", request)
        else:
            raise TypeError(f"not a store operation: {op!r}")

    def _put(self, position: int, op: Any) -> None:
        namespace = tuple(op.namespace)
        if op.value is None:
            check_labels(namespace, self._invalid)
            if not namespace:
                self._answer(position, None)
                return
            self._send(
                position, "delete", pb.DeleteItemRequest(namespace=namespace, key=str(op.key))
            )
            return
        check_put_namespace(namespace, self._invalid)
        if not isinstance(op.value, Mapping):
            raise TypeError(f"an item's value is a JSON object (a dict), not {op.value!r}")
        value = dict(op.value)
        request = pb.PutItemRequest(
            namespace=namespace, key=str(op.key), value=to_struct(value, field="value")
        )
        if op.ttl is not None:
            request.ttl.CopyFrom(_duration(op.ttl))
        held = self._send(position, "put", request)
        if self._index is not None and op.index is not False:
            pairs = self._index.texts(value, op.index)
            self._puts.append(_Put(held, [path for path, _ in pairs], len(self.documents)))
            self.documents.extend(text for _, text in pairs)

    def _search(self, position: int, op: Any) -> None:
        prefix = tuple(op.namespace_prefix)
        check_labels(prefix, self._invalid)
        if op.limit == 0:
            self._answer(position, [])
            return
        request = pb.SearchItemsRequest(
            namespace_prefix=prefix,
            filter=to_struct(op.filter, field="filter"),
            limit=op.limit,
            offset=op.offset,
            refresh_ttl=bool(op.refresh_ttl),
        )
        held = self._send(position, "search", request)
        if op.query and self._index is not None:
            if op.query not in self.queries:
                self.queries.append(op.query)
            self._searches.append((held, self.queries.index(op.query)))

    def _list(self, position: int, op: Any) -> None:
        prefixes: list[tuple[str, ...]] = []
        suffixes: list[tuple[str, ...]] = []
        for condition in op.match_conditions or ():
            path = tuple(condition.path)
            check_labels(path, self._invalid)
            if condition.match_type == "prefix":
                prefixes.append(path)
            elif condition.match_type == "suffix":
                suffixes.append(path[::-1])
            else:
                raise self._invalid(f"unknown match_type {condition.match_type!r}")
        prefix, suffix = _merge(prefixes), _merge(suffixes)
        if prefix is None or suffix is None or op.limit == 0:
            self._answer(position, [])
            return
        request = pb.ListNamespacesRequest(
            prefix=prefix,
            suffix=suffix[::-1],
            max_depth=op.max_depth or 0,
            limit=op.limit,
            offset=op.offset,
        )
        self._send(position, "list_namespaces", request)

    # --- calls and results -------------------------------------------------------------

    def calls(
        self, documents: Sequence[Vector] = (), queries: Sequence[Vector] = ()
    ) -> list[tuple[str, Message]]:
        """(rpc, request) to call in order, given the vectors of
        `self.documents` and `self.queries`. Called once per plan."""
        if len(documents) != len(self.documents) or len(queries) != len(self.queries):
            raise ValueError(
                f"{len(documents)} vectors for {len(self.documents)} texts and "
                f"{len(queries)} for {len(self.queries)} queries"
            )
        for put in self._puts:
            for i, path in enumerate(put.paths):
                put.request.vectors.add(path=path, values=documents[put.start + i])
        for request, query in self._searches:
            request.query_vector[:] = queries[query]
        operations = self._operations
        if len(operations) == 1:
            kind = operations[0].WhichOneof("operation")
            assert kind is not None
            return [(_RPC[kind], getattr(operations[0], kind))]
        return [
            ("BatchItems", pb.BatchItemsRequest(operations=operations[i : i + MAX_OPERATIONS]))
            for i in range(0, len(operations), MAX_OPERATIONS)
        ]

    def results(
        self,
        responses: Sequence[Message],
        *,
        item: ItemFactory = Item._from_proto,
        search_item: SearchItemFactory = SearchItem._from_proto,
    ) -> list[Any]:
        """One result per operation, from the responses of `calls()`, in
        LangGraph's shapes: get -> item or None; put and delete -> None;
        search -> search items; list_namespaces -> tuples of labels."""
        replies: list[pb.StoreResult] = []
        if len(self._operations) == 1:
            reply = pb.StoreResult()
            getattr(reply, self._wire[0][1]).CopyFrom(responses[0])
            replies.append(reply)
        else:
            for response in responses:
                assert isinstance(response, pb.BatchItemsResponse)
                replies.extend(response.results)
        results = dict(self._local)
        for (position, kind), reply in zip(self._wire, replies, strict=True):
            results[position] = _result(kind, reply, item, search_item)
        return [results[i] for i in range(self._count)]


def _result(
    kind: str, reply: pb.StoreResult, item: ItemFactory, search_item: SearchItemFactory
) -> Any:
    if kind == "get":
        return item(reply.get.item) if reply.get.HasField("item") else None
    if kind == "search":
        return [search_item(found) for found in reply.search.items]
    if kind == "list_namespaces":
        return [tuple(path.labels) for path in reply.list_namespaces.namespaces]
    return None  # put, delete
