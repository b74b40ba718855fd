"""Stored values as JSON, whoever serialized them.

Native runs store JSON (type "json"). LangGraph applications store what their
serializer wrote (type "msgpack", "null", "bytes", "pickle", ...) through
CheckpointService, and the service hands those back unchanged. To show them in
GetState and GetStateHistory they are decoded here as far as they can be:
msgpack becomes JSON, LangGraph's encoded objects (messages, dataclasses,
Interrupt, ...) become objects with a "$type" key naming their class, and
anything else becomes a typed blob, {"$blob": {"type", "size", "base64"}}:
bytes that do not decode as their type says (a client may store anything)
show as that blob too, so that every thread stays readable. A part nested
deeper than the API carries (MAX_SHOWN_DEPTH) shows as {"$too_deep": its
JSON text}.
"""

from __future__ import annotations

import base64
import datetime
import json
import math
from typing import Any

import msgpack

from cairn_server.domain import Json

JSON = "json"
"""Type of a value stored as UTF-8 JSON; every native value is one."""

NO_VALUE = "empty"
"""Type the Cairn LangGraph saver gives a channel that has no value at a version."""

# LangGraph's msgpack extension codes whose payload is (module, class, argument,
# ...): a constructor or method called with one argument, positional arguments,
# keyword arguments, or a pydantic model's fields.
_OBJECT_EXT_CODES = frozenset(range(6))


MAX_SHOWN_DEPTH = 24
"""How deep a shown value nests arrays and objects: the depth limit of JSON
values in the API (cairn._values.MAX_JSON_DEPTH, which a test pins equal), so
that every client can decode what GetState shows."""


def decode_typed(kind: str, data: bytes | None) -> Json:
    """The value a (type, bytes) pair holds, as JSON."""
    if kind == "null":
        return None
    try:
        if kind == JSON and data is not None:
            return _shown(json.loads(data, parse_constant=str))
        if kind == "msgpack" and data is not None:
            unpacked = msgpack.unpackb(data, ext_hook=_ext, strict_map_key=False)
            return _shown(_jsonable(unpacked))
    except (ValueError, RecursionError, msgpack.UnpackException):
        pass  # not what its type says: shown as the bytes it is
    return typed_blob(kind, data)


def _shown(value: Json, depth: int = 0) -> Json:
    """`value` with each container at level MAX_SHOWN_DEPTH that holds more
    containers replaced by a marker (of one level)."""
    if not isinstance(value, dict | list):
        return value
    items = value.values() if isinstance(value, dict) else value
    if depth + 1 >= MAX_SHOWN_DEPTH and any(isinstance(item, dict | list) for item in items):
        try:
            text = json.dumps(value)
        except (ValueError, RecursionError):
            text = "(nested too deep to show)"
        return {"$too_deep": text}
    if isinstance(value, dict):
        return {key: _shown(item, depth + 1) for key, item in value.items()}
    return [_shown(item, depth + 1) for item in value]


def typed_blob(kind: str, data: bytes | None) -> Json:
    """What a value that cannot be decoded shows: its type, size and bytes."""
    raw = data or b""
    return {"$blob": {"type": kind, "size": len(raw), "base64": base64.b64encode(raw).decode()}}


class _Decoded:
    """An extension value already turned into JSON (kept apart from plain maps
    so that `_jsonable` does not walk it twice)."""

    __slots__ = ("value",)

    def __init__(self, value: Json) -> None:
        self.value = value


def _ext(code: int, data: bytes) -> _Decoded:
    if code == -1:  # msgpack's own timestamp
        stamp = msgpack.Timestamp.from_bytes(data).to_datetime()
        return _Decoded(stamp.astimezone(datetime.UTC).isoformat())
    if code in _OBJECT_EXT_CODES:
        payload = msgpack.unpackb(data, ext_hook=_ext, strict_map_key=False)
        if (
            isinstance(payload, list)
            and len(payload) >= 3
            and all(isinstance(part, str) for part in payload[:2])
        ):
            module, name, argument = payload[:3]
            decoded = _jsonable(argument)
            if isinstance(decoded, dict):
                return _Decoded({"$type": f"{module}.{name}", **decoded})
            return _Decoded({"$type": f"{module}.{name}", "value": decoded})
    return _Decoded(typed_blob(f"msgpack-ext-{code}", data))


def _jsonable(value: Any) -> Json:
    if isinstance(value, _Decoded):
        return value.value
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, bytes):
        return typed_blob("bytes", value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return typed_blob(type(value).__name__, None)
