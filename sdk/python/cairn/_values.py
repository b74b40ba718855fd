"""JSON values across the wire: google.protobuf.Value and Struct to Python
and back. Shared by the SDK and the server.

Numbers travel as doubles, as in JSON. A whole number within 2**53 comes back
as an int, so `1` stays `1` across a round trip; larger integers lose
precision, as they would in JavaScript.
"""

from __future__ import annotations

import enum
import math
from typing import Any, TypeVar

from google.protobuf import struct_pb2

E = TypeVar("E", bound=enum.Enum)

_SAFE_INT = 2**53


class InvalidValueError(ValueError):
    """A value that JSON cannot carry (NaN, infinity, no kind, non-JSON type)."""


def to_json(value: struct_pb2.Value, field: str = "value") -> Any:
    """A Value as plain Python data."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return struct_to_json(value.struct_value, field)
    if kind == "list_value":
        return [to_json(item, field) for item in value.list_value.values]
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


def struct_to_json(struct: struct_pb2.Struct, field: str = "value") -> dict[str, Any]:
    return {key: to_json(item, field) for key, item in struct.fields.items()}


def to_value(data: Any, out: struct_pb2.Value | None = None) -> struct_pb2.Value:
    """Plain Python data as a Value (written into `out` when given)."""
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
            to_value(item, value.struct_value.fields[key])
    elif isinstance(data, list | tuple):
        value.list_value.SetInParent()
        for item in data:
            to_value(item, value.list_value.values.add())
    else:
        raise InvalidValueError(f"{type(data).__name__} is not JSON-compatible")
    return value


def to_struct(data: dict[str, Any] | None) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    for key, item in (data or {}).items():
        to_value(item, struct.fields[key])
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
