"""JSON values from requests, checked: the SDK's conversions, with invalid
values and oversized payloads reported as service errors."""

from __future__ import annotations

from google.protobuf import struct_pb2

from cairn._values import InvalidValueError, to_struct, to_value
from cairn._values import struct_to_json as _struct_to_json
from cairn._values import to_json as _to_json
from cairn_server.domain import Json
from cairn_server.errors import InvalidArgument, ResourceExhausted


def to_json(value: struct_pb2.Value, field: str = "value") -> Json:
    try:
        return _to_json(value, field)
    except InvalidValueError as error:
        raise InvalidArgument("INVALID_ARGUMENT", str(error), field=field) from None


def struct_to_json(struct: struct_pb2.Struct, field: str = "value") -> dict[str, Json]:
    try:
        return _struct_to_json(struct, field)
    except InvalidValueError as error:
        raise InvalidArgument("INVALID_ARGUMENT", str(error), field=field) from None


def check_size(message_size: int, limit: int, field: str) -> None:
    if message_size > limit:
        raise ResourceExhausted(
            "PAYLOAD_TOO_LARGE",
            f"{field} is {message_size} bytes; the limit is {limit}",
            field=field,
            limit=str(limit),
        )


__all__ = ["check_size", "struct_to_json", "to_json", "to_struct", "to_value"]
