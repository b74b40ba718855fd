"""JSON values across the wire: google.protobuf.Value and Struct to Python
and back. Shared by the SDK and the server.

Numbers travel as doubles, as in JSON. A whole number within 2**53 comes back
as an int, so `1` stays `1` across a round trip; larger integers lose
precision, as they would in JavaScript.

Values nest arrays and objects at most MAX_JSON_DEPTH levels deep (see
"Limits" in protos/cairn/v1/errors.proto): `to_value` refuses a deeper value
before it is sent, and the service refuses one it receives.
"""

from __future__ import annotations

import enum
import math
from typing import Any, TypeVar

import grpc
from google.protobuf import struct_pb2

from cairn._errors import InvalidArgumentError

E = TypeVar("E", bound=enum.Enum)

_SAFE_INT = 2**53

MAX_JSON_DEPTH = 24
"""How deep arrays and objects may nest in a value Cairn carries: each object
level costs protobuf three message levels and its decoders stop at 100, with
room left for the messages and events around a value."""


class InvalidValueError(ValueError):
    """A value that JSON cannot carry (NaN, infinity, no kind, non-JSON type)."""


class JsonTooDeepError(InvalidValueError, InvalidArgumentError):
    """A value nests arrays and objects deeper than Cairn carries
    (MAX_JSON_DEPTH = 24 levels). Raised before the value is sent, with the
    code and reason (INVALID_ARGUMENT, JSON_TOO_DEEP) the service would
    answer; a task whose result is too deep fails without retrying.

        try:
            await client.invoke(agent, deeply_nested)
        except cairn.JsonTooDeepError as error:
            print(error.metadata["limit"])  # "24"
    """

    def __init__(self, field: str, limit: int = MAX_JSON_DEPTH) -> None:
        message = (
            f"{field} nests arrays and objects more than {limit} levels deep;"
            f" Cairn carries JSON values up to {limit} levels"
        )
        InvalidArgumentError.__init__(
            self,
            message,
            code=grpc.StatusCode.INVALID_ARGUMENT,
            reason="JSON_TOO_DEEP",
            metadata={"field": field, "limit": str(limit)},
        )


def to_json(
    value: struct_pb2.Value, field: str = "value", *, max_depth: int | None = None, _depth: int = 0
) -> Any:
    """A Value as plain Python data; JsonTooDeepError if it nests deeper than
    `max_depth` (when given)."""
    kind = value.WhichOneof("kind")
    if kind in ("struct_value", "list_value") and max_depth is not None and _depth >= max_depth:
        raise JsonTooDeepError(field, max_depth)
    if kind == "struct_value":
        return struct_to_json(value.struct_value, field, max_depth=max_depth, _depth=_depth)
    if kind == "list_value":
        return [
            to_json(item, field, max_depth=max_depth, _depth=_depth + 1)
            for item in value.list_value.values
        ]
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            raise InvalidValueError(f"{field} holds {number}, which JSON cannot carry")
        if number.is_integer() and -_SAFE_INT <= number <= _SAFE_INT:
            return int(number)
        return number
    if kind == "bool_value":
        return value.bool_value
    if kind == "null_value":
        return None
    raise InvalidValueError(f"{field} has no value kind set")


def struct_to_json(
    struct: struct_pb2.Struct,
    field: str = "value",
    *,
    max_depth: int | None = None,
    _depth: int = 0,
) -> dict[str, Any]:
    """A Struct (one object level) as a dict; see `to_json`."""
    if max_depth is not None and _depth >= max_depth:
        raise JsonTooDeepError(field, max_depth)
    return {
        key: to_json(item, field, max_depth=max_depth, _depth=_depth + 1)
        for key, item in struct.fields.items()
    }


def to_value(
    data: Any,
    out: struct_pb2.Value | None = None,
    *,
    field: str = "value",
    max_depth: int | None = MAX_JSON_DEPTH,
    _depth: int = 0,
) -> struct_pb2.Value:
    """Plain Python data as a Value (written into `out` when given);
    JsonTooDeepError if it nests deeper than `max_depth` (None: no limit)."""
    if max_depth is not None and _depth >= max_depth and isinstance(data, dict | list | tuple):
        raise JsonTooDeepError(field, max_depth)
    value = struct_pb2.Value() if out is None else out
    if data is None:
        value.null_value = struct_pb2.NULL_VALUE
    elif isinstance(data, bool):
        value.bool_value = data
    elif isinstance(data, int | float):
        if isinstance(data, float) and not math.isfinite(data):
            raise InvalidValueError(f"{data} cannot be sent as JSON")
        value.number_value = data
    elif isinstance(data, str):
        value.string_value = data
    elif isinstance(data, dict):
        value.struct_value.SetInParent()
        for key, item in data.items():
            if not isinstance(key, str):
                raise InvalidValueError(f"JSON object keys must be strings, not {key!r}")
            to_value(
                item,
                value.struct_value.fields[key],
                field=field,
                max_depth=max_depth,
                _depth=_depth + 1,
            )
    elif isinstance(data, list | tuple):
        value.list_value.SetInParent()
        for item in data:
            to_value(
                item,
                value.list_value.values.add(),
                field=field,
                max_depth=max_depth,
                _depth=_depth + 1,
            )
    else:
        raise InvalidValueError(f"{type(data).__name__} is not JSON-compatible")
    return value


def to_struct(
    data: dict[str, Any] | None, *, field: str = "value", max_depth: int | None = MAX_JSON_DEPTH
) -> struct_pb2.Struct:
    """A dict as a Struct (one object level); see `to_value`."""
    if max_depth is not None and max_depth < 1 and data:
        raise JsonTooDeepError(field, max_depth)
    struct = struct_pb2.Struct()
    for key, item in (data or {}).items():
        to_value(item, struct.fields[key], field=field, max_depth=max_depth, _depth=1)
    return struct


def enum_table(proto_enum: Any, python_enum: type[E]) -> dict[Any, E]:
    """Protocol enum numbers to a Python enum whose values are the protocol
    names without their prefix, lower case: DURABILITY_SYNC -> "sync"."""
    prefix = proto_enum.DESCRIPTOR.values[0].name.removesuffix("UNSPECIFIED")
    return {
        value.number: python_enum(value.name.removeprefix(prefix).lower())
        for value in proto_enum.DESCRIPTOR.values
        if value.number != 0
    }
