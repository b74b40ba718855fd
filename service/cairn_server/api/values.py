"""JSON values from requests, checked: the SDK's conversions, with invalid
values, values nested deeper than MAX_JSON_DEPTH and oversized payloads
reported as service errors. Values the service sends back are not limited:
it wraps values of at most that depth in a few levels of its own."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2

from cairn._values import MAX_JSON_DEPTH, InvalidValueError, JsonTooDeepError
from cairn._values import struct_to_json as _struct_to_json
from cairn._values import to_json as _to_json
from cairn._values import to_struct as _to_struct
from cairn._values import to_value as _to_value
from cairn_server.domain import Json
from cairn_server.errors import InvalidArgument, ResourceExhausted


def too_deep(field: str) -> InvalidArgument:
    """JSON_TOO_DEEP for `field`, as the SDKs report it."""
    error = JsonTooDeepError(field)
    return InvalidArgument("JSON_TOO_DEEP", error.message, **error.metadata)


def check_depth(data: Json, field: str) -> None:
    """JSON_TOO_DEEP unless plain JSON data nests at most MAX_JSON_DEPTH deep."""
    level: list[Json] = [data]
    depth = 0
    while level:
        containers = [item for item in level if isinstance(item, dict | list)]
        if not containers:
            return
        depth += 1
        if depth > MAX_JSON_DEPTH:
            raise too_deep(field)
        level = [
            child
            for container in containers
            for child in (container.values() if isinstance(container, dict) else container)
        ]


def to_json(value: struct_pb2.Value, field: str = "value") -> Json:
    try:
        return _to_json(value, field, max_depth=MAX_JSON_DEPTH)
    except JsonTooDeepError:
        raise too_deep(field) from None
    except InvalidValueError as error:
        raise InvalidArgument("INVALID_ARGUMENT", str(error), field=field) from None


def struct_to_json(struct: struct_pb2.Struct, field: str = "value") -> dict[str, Json]:
    try:
        return _struct_to_json(struct, field, max_depth=MAX_JSON_DEPTH)
    except JsonTooDeepError:
        raise too_deep(field) from None
    except InvalidValueError as error:
        raise InvalidArgument("INVALID_ARGUMENT", str(error), field=field) from None


def to_value(data: Any, out: struct_pb2.Value | None = None) -> struct_pb2.Value:
    """A value the service sends (not limited in depth)."""
    return _to_value(data, out, max_depth=None)


def to_struct(data: dict[str, Any] | None) -> struct_pb2.Struct:
    """A struct the service sends (not limited in depth)."""
    return _to_struct(data, max_depth=None)


def check_size(message_size: int, limit: int, field: str) -> None:
    if message_size > limit:
        raise ResourceExhausted(
            "PAYLOAD_TOO_LARGE",
            f"{field} is {message_size} bytes; the limit is {limit}",
            field=field,
            limit=str(limit),
        )


__all__ = ["check_size", "struct_to_json", "to_json", "to_struct", "to_value"]
