"""Length limits on the ids, names and paths of every request (the "Limits"
paragraph of protos/cairn/v1/errors.proto states them for SDK authors).

One walk over a decoded request message checks every string field, repeated
string and map key of the cairn.v1 messages in it, and the keys of the
`metadata` and `filter` structs; JSON values are left to api/values.py (depth)
and the payload limit.
"""

from __future__ import annotations

from google.protobuf import message, struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from cairn_server.errors import ServiceError, error_for
from cairn_server.namespaces import SEP

MAX_ID_BYTES = 256
"""Ids and names: thread, run, checkpoint, request, worker, task and interrupt
ids, targets and task/entrypoint/graph/node names, metadata keys."""

MAX_PATH_BYTES = 4096
"""checkpoint_ns and the channels and task paths of LangGraph's writes: they
join node names and task ids per subgraph level. Page tokens too."""

_PATHS = frozenset({"checkpoint_ns", "task_path", "channel", "page_token"})
_FREE_TEXT = frozenset({"type", "message", "traceback", "metadata_json", "filter_json"})
"""TaskError's texts and the checkpoint surface's JSON: bounded by the payload
limit only. (TypedValue.type is an id: see _limit.)"""
_KEYED_STRUCTS = frozenset({"metadata", "filter"})
_STRING = FieldDescriptor.TYPE_STRING
_MESSAGE = FieldDescriptor.TYPE_MESSAGE


def _is_cairn(descriptor: Descriptor | None) -> bool:
    return descriptor is not None and not descriptor.full_name.startswith("google.protobuf.")


def _limit(message_name: str, field: str) -> int | None:
    if field in _PATHS:
        return MAX_PATH_BYTES
    if field in _FREE_TEXT and message_name != "TypedValue":
        return None
    return MAX_ID_BYTES


def _too_long(where: str, value: str, limit: int) -> ServiceError | None:
    # A UTF-8 string has at most 4 bytes per character: encode only near the limit.
    if len(value) * 4 <= limit or len(value.encode()) <= limit:
        return None
    size = len(value.encode())
    return error_for(
        "ID_TOO_LONG",
        f"{where} is {size} bytes long; the limit is {limit}",
        field=where,
        limit=str(limit),
    )


def _separator(where: str, value: str, limit: int) -> ServiceError | None:
    """Ids may not hold the character that separates a namespace from an id
    inside the service (cairn_server/namespaces.py)."""
    if limit != MAX_ID_BYTES or SEP not in value:
        return None
    return error_for(
        "INVALID_ARGUMENT",
        f"{where} contains the control character U+001F, which ids may not contain",
        field=where,
    )


def check_lengths(request: message.Message) -> ServiceError | None:
    """The first id, name, path or metadata key of `request` over its limit."""
    return _check(request, request.DESCRIPTOR.name)


def _check(msg: message.Message, where: str) -> ServiceError | None:
    descriptor = msg.DESCRIPTOR
    for field, value in msg.ListFields():
        name = field.name
        path = f"{where}.{name}"
        if field.type == _STRING:
            limit = _limit(descriptor.name, name)
            if limit is None:
                continue
            for item in value if field.is_repeated else (value,):
                error = _too_long(path, item, limit) or _separator(path, item, limit)
                if error is not None:
                    return error
        elif field.type == _MESSAGE:
            error = _check_message_field(field, value, path)
            if error is not None:
                return error
    return None


def _check_message_field(field: FieldDescriptor, value: object, path: str) -> ServiceError | None:
    entry = field.message_type
    assert entry is not None
    if isinstance(value, struct_pb2.Struct):
        if field.name in _KEYED_STRUCTS:
            for key in value.fields:
                error = _too_long(f"{path} key", key, MAX_ID_BYTES)
                if error is not None:
                    return error
        return None
    if entry.full_name.startswith("google.protobuf."):
        return None  # values (depth and payload limits) and times
    if entry.GetOptions().map_entry:
        key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
        for key, item in value.items():  # type: ignore[attr-defined]
            if key_field.type == _STRING:
                error = _too_long(f"{path} key", key, MAX_ID_BYTES)
                if error is not None:
                    return error
            if value_field.type == _STRING:
                error = _too_long(path, item, MAX_ID_BYTES)
            elif value_field.type == _MESSAGE and _is_cairn(value_field.message_type):
                error = _check(item, path)
            else:
                error = None
            if error is not None:
                return error
        return None
    for item in value if field.is_repeated else (value,):  # type: ignore[attr-defined]
        error = _check(item, path)
        if error is not None:
            return error
    return None
