"""Reducers: how a state channel combines one superstep's writes with its
value. Applied by the service, never by workers (see graph.proto)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from cairn_server.domain import Json
from cairn_server.errors import error_for

MISSING: Json = object()
REMOVE_ALL = "__remove_all__"  # LangGraph's id for "remove every earlier message"


class InvalidUpdate(Exception):
    """Writes a channel cannot take, e.g. two values for a last-value key."""


def _last_value(channel: str, current: Json, writes: Sequence[Json]) -> Json:
    if len(writes) > 1:
        raise InvalidUpdate(
            f"channel {channel!r} can receive only one value per step; "
            f"use a reducer (Annotated[..., operator.add]) to accept several"
        )
    return writes[-1]


def _add_two(channel: str, left: Json, right: Json) -> Json:
    numbers = (int, float)
    if isinstance(left, numbers) and isinstance(right, numbers) and not isinstance(left, bool):
        return left + right
    if isinstance(left, str) and isinstance(right, str):
        return left + right
    if isinstance(left, list) and isinstance(right, list):
        return left + right
    raise InvalidUpdate(
        f"channel {channel!r} adds with +, which does not apply to "
        f"{type(left).__name__} and {type(right).__name__}"
    )


def _add(channel: str, current: Json, writes: Sequence[Json]) -> Json:
    value = current
    for write in writes:
        value = write if value is MISSING else _add_two(channel, value, write)
    return value


def _append(channel: str, current: Json, writes: Sequence[Json]) -> Json:
    value = [] if current is MISSING else list(current)
    for write in writes:
        value.extend(write if isinstance(write, list) else [write])
    return value


def _merge(channel: str, current: Json, writes: Sequence[Json]) -> Json:
    value = {} if current is MISSING else dict(current)
    for write in writes:
        if not isinstance(write, dict):
            raise InvalidUpdate(f"channel {channel!r} merges objects, not {type(write).__name__}")
        value.update(write)
    return value


def _add_messages(channel: str, current: Json, writes: Sequence[Json]) -> Json:
    messages: list[Json] = [] if current is MISSING else list(current)
    for write in writes:
        for message in write if isinstance(write, list) else [write]:
            if not isinstance(message, dict):
                raise InvalidUpdate(f"channel {channel!r} holds message objects")
            if message.get("type") == "remove" and message.get("id") == REMOVE_ALL:
                messages = []
                continue
            message = dict(message)
            # Deterministic ids, so a replayed step assigns the same ones.
            key = f"{channel}:{len(messages)}:{message!r}"
            message.setdefault("id", str(uuid.uuid5(uuid.NAMESPACE_OID, key)))
            position = next((i for i, m in enumerate(messages) if m["id"] == message["id"]), None)
            if message.get("type") == "remove":
                if position is None:
                    raise InvalidUpdate(f"no message with id {message['id']!r} to remove")
                del messages[position]
            elif position is None:
                messages.append(message)
            else:
                messages[position] = message
    return messages


REDUCERS: dict[str, Callable[[str, Json, Sequence[Json]], Json]] = {
    "last_value": _last_value,
    "add": _add,
    "append": _append,
    "merge": _merge,
    "add_messages": _add_messages,
}


def reduce(reducer: str, channel: str, current: Json, writes: Sequence[Json]) -> Json:
    """The channel's value after `writes`; raises InvalidUpdate."""
    if reducer not in REDUCERS:
        raise error_for("INVALID_ARGUMENT", f"unknown reducer {reducer!r}", channel=channel)
    return REDUCERS[reducer](channel, current, writes)
