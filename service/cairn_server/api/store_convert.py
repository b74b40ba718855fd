"""StoreService requests to memory operations and back, with the checks the
protocol promises (store_service.proto): namespace labels, keys, vectors,
TTLs, limits and offsets. Lengths of labels and keys are checked for every
request by api/limits.py (ID_TOO_LONG) before these run."""

from __future__ import annotations

import math
from collections.abc import Sequence

from google.protobuf import duration_pb2

from cairn.v1 import store_pb2
from cairn.v1 import store_service_pb2 as pb
from cairn_server.api.convert import timestamp
from cairn_server.api.values import check_size, struct_to_json, to_struct
from cairn_server.errors import InvalidArgument, error_for
from cairn_server.memory import base as m

MAX_LABELS = 32
MAX_VECTORS = 64
MAX_DIMS = 16_000
MAX_LIMIT = 1_000
MAX_OFFSET = 100_000
MAX_OPERATIONS = 1_000
MIN_TTL_SECONDS = 1.0
DEFAULT_SEARCH_LIMIT = 10
DEFAULT_LIST_LIMIT = 100
RESERVED_ROOT = "langgraph"
_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"})


def _invalid(message: str, field: str) -> InvalidArgument:
    error = error_for("INVALID_ARGUMENT", message, field=field)
    assert isinstance(error, InvalidArgument)
    return error


def _labels(labels: Sequence[str], field: str) -> m.Path:
    if len(labels) > MAX_LABELS:
        raise _invalid(f"{field} has {len(labels)} labels; at most {MAX_LABELS}", field)
    for label in labels:
        if not label:
            raise _invalid(f"{field} has an empty label", field)
        if "." in label or "\x00" in label:
            raise _invalid(f"{field} label {label!r} contains '.' or NUL", field)
    return tuple(labels)


def _namespace(labels: Sequence[str], field: str = "namespace") -> m.Path:
    if not labels:
        raise _invalid(f"{field} is required (1 to {MAX_LABELS} labels)", field)
    return _labels(labels, field)


def _key(key: str) -> str:
    if not key:
        raise _invalid("key is required", "key")
    if "\x00" in key:
        raise _invalid("key contains NUL", "key")
    return key


def _bounded(value: int, field: str, *, default: int, maximum: int) -> int:
    if value < 0 or value > maximum:
        raise _invalid(f"{field} must be between 0 and {maximum}, got {value}", field)
    return value or default


def _offset(value: int, field: str) -> int:
    if value < 0 or value > MAX_OFFSET:
        raise _invalid(f"{field} must be between 0 and {MAX_OFFSET}, got {value}", field)
    return value


def _vector(values: Sequence[float], field: str) -> tuple[float, ...]:
    if not values or len(values) > MAX_DIMS:
        raise _invalid(f"{field} must have 1 to {MAX_DIMS} numbers, got {len(values)}", field)
    vector = tuple(float(v) for v in values)
    if not all(math.isfinite(v) for v in vector):
        raise _invalid(f"{field} holds a number that is not finite", field)
    return vector


def _ttl(ttl: duration_pb2.Duration, present: bool) -> float | None:
    if not present:
        return None
    seconds = ttl.seconds + ttl.nanos / 1e9
    if seconds < MIN_TTL_SECONDS:
        raise _invalid(f"ttl must be at least {MIN_TTL_SECONDS:g} second, got {seconds:g}", "ttl")
    return seconds


def _check_filter(filter_: object, field: str) -> None:
    """Operators are those of LangGraph's stores (the six of Python's, and
    langgraphjs's $in and $nin, which take an array); an object with "$"
    keys holds only operators."""
    if not isinstance(filter_, dict):
        return
    keys = list(filter_)
    operators = [key for key in keys if key.startswith("$")]
    if operators and len(operators) != len(keys):
        raise _invalid(f"{field} mixes operators and fields: {sorted(keys)}", field)
    for key, value in filter_.items():
        if key.startswith("$"):
            if key not in _OPERATORS:
                raise _invalid(
                    f"{field} has unknown operator {key!r}; use one of {sorted(_OPERATORS)}", field
                )
            if key in ("$in", "$nin") and not isinstance(value, list):
                raise _invalid(f"{field}.{key} takes an array, not {value!r}", field)
        else:
            _check_filter(value, f"{field}.{key}")


def get_op(request: pb.GetItemRequest) -> m.GetItem:
    refresh = request.refresh_ttl if request.HasField("refresh_ttl") else True
    return m.GetItem(_namespace(request.namespace), _key(request.key), refresh_ttl=refresh)


def put_op(request: pb.PutItemRequest, *, limit: int) -> m.PutItem:
    namespace = _namespace(request.namespace)
    if namespace[0] == RESERVED_ROOT:
        raise _invalid(f'the first label may not be "{RESERVED_ROOT}" (reserved)', "namespace")
    key = _key(request.key)
    check_size(request.value.ByteSize(), limit, "value")
    value = struct_to_json(request.value, "value")
    if len(request.vectors) > MAX_VECTORS:
        raise _invalid(f"an item has at most {MAX_VECTORS} vectors", "vectors")
    vectors: dict[str, m.Vector] = {}
    for index, vector in enumerate(request.vectors):
        if not vector.path:
            raise _invalid(f"vectors[{index}].path is required", f"vectors[{index}].path")
        if vector.path in vectors:
            raise _invalid(f"two vectors for path {vector.path!r}", f"vectors[{index}].path")
        values = _vector(vector.values, f"vectors[{index}].values")
        vectors[vector.path] = m.Vector(vector.path, values)
    ttl = _ttl(request.ttl, request.HasField("ttl"))
    return m.PutItem(namespace, key, value, tuple(vectors.values()), ttl)


def delete_op(request: pb.DeleteItemRequest) -> m.DeleteItem:
    return m.DeleteItem(_namespace(request.namespace), _key(request.key))


def search_op(request: pb.SearchItemsRequest) -> m.SearchItems:
    prefix = _labels(request.namespace_prefix, "namespace_prefix")
    filter_ = struct_to_json(request.filter, "filter")
    _check_filter(filter_, "filter")
    query = _vector(request.query_vector, "query_vector") if request.query_vector else ()
    return m.SearchItems(
        namespace_prefix=prefix,
        filter=filter_,
        limit=_bounded(request.limit, "limit", default=DEFAULT_SEARCH_LIMIT, maximum=MAX_LIMIT),
        offset=_offset(request.offset, "offset"),
        query_vector=query,
        refresh_ttl=request.refresh_ttl if request.HasField("refresh_ttl") else True,
    )


def list_op(request: pb.ListNamespacesRequest) -> m.ListNamespaces:
    if request.max_depth < 0:
        raise _invalid(f"max_depth must not be negative, got {request.max_depth}", "max_depth")
    return m.ListNamespaces(
        prefix=_labels(request.prefix, "prefix"),
        suffix=_labels(request.suffix, "suffix"),
        max_depth=request.max_depth or None,
        limit=_bounded(request.limit, "limit", default=DEFAULT_LIST_LIMIT, maximum=MAX_LIMIT),
        offset=_offset(request.offset, "offset"),
    )


def batch_ops(request: pb.BatchItemsRequest, *, limit: int) -> list[m.Operation]:
    count = len(request.operations)
    if not 1 <= count <= MAX_OPERATIONS:
        raise _invalid(f"a batch has 1 to {MAX_OPERATIONS} operations, got {count}", "operations")
    ops: list[m.Operation] = []
    for index, operation in enumerate(request.operations):
        try:
            ops.append(_operation(operation, limit=limit))
        except InvalidArgument as error:
            error.metadata["operation"] = str(index)
            raise
    return ops


def _operation(operation: pb.StoreOperation, *, limit: int) -> m.Operation:
    kind = operation.WhichOneof("operation")
    if kind == "get":
        return get_op(operation.get)
    if kind == "put":
        return put_op(operation.put, limit=limit)
    if kind == "delete":
        return delete_op(operation.delete)
    if kind == "search":
        return search_op(operation.search)
    if kind == "list_namespaces":
        return list_op(operation.list_namespaces)
    raise _invalid(
        "an operation must set one of get, put, delete, search, list_namespaces", "operations"
    )


def writes(ops: Sequence[m.Operation]) -> bool:
    """Whether a batch changes the store (the writer role's business)."""
    return any(isinstance(op, m.PutItem | m.DeleteItem) for op in ops)


# --- results ------------------------------------------------------------------


def item(record: m.MemoryItem) -> store_pb2.Item:
    out = store_pb2.Item(
        namespace=list(record.namespace),
        key=record.key,
        value=to_struct(record.value),
        create_time=timestamp(record.created_at),
        update_time=timestamp(record.updated_at),
    )
    if record.expires_at is not None:
        out.expire_time.CopyFrom(timestamp(record.expires_at))
    return out


def get_result(result: m.Result) -> pb.GetItemResponse:
    assert result is None or isinstance(result, m.MemoryItem)
    return pb.GetItemResponse(item=item(result)) if result is not None else pb.GetItemResponse()


def put_result(result: m.Result) -> pb.PutItemResponse:
    assert isinstance(result, m.MemoryItem)
    return pb.PutItemResponse(item=item(result))


def delete_result(result: m.Result) -> pb.DeleteItemResponse:
    assert isinstance(result, bool)
    return pb.DeleteItemResponse(deleted=result)


def search_result(result: m.Result) -> pb.SearchItemsResponse:
    assert isinstance(result, list)
    items = []
    for found in result:
        assert isinstance(found, m.ScoredItem)
        scored = store_pb2.SearchItem(item=item(found.item))
        if found.score is not None:
            scored.score = found.score
        items.append(scored)
    return pb.SearchItemsResponse(items=items)


def list_result(result: m.Result) -> pb.ListNamespacesResponse:
    assert isinstance(result, list)
    paths = [store_pb2.NamespacePath(labels=list(path)) for path in result]  # type: ignore[arg-type]
    return pb.ListNamespacesResponse(namespaces=paths)


def batch_result(ops: Sequence[m.Operation], results: Sequence[m.Result]) -> pb.BatchItemsResponse:
    out = pb.BatchItemsResponse()
    for op, result in zip(ops, results, strict=True):
        entry = out.results.add()
        if isinstance(op, m.GetItem):
            entry.get.CopyFrom(get_result(result))
        elif isinstance(op, m.PutItem):
            entry.put.CopyFrom(put_result(result))
        elif isinstance(op, m.DeleteItem):
            entry.delete.CopyFrom(delete_result(result))
        elif isinstance(op, m.SearchItems):
            entry.search.CopyFrom(search_result(result))
        else:
            entry.list_namespaces.CopyFrom(list_result(result))
    return out
