"""LangGraph's store filters, evaluated on an item's value.

A filter maps top-level fields of the value to what they must match
(store_service.proto, SearchItemsRequest.filter):

- a plain value must equal the field: JSON equality, where 1 and 1.0 are
  equal but 1 and true are not, and arrays are equal element by element;
- an object without "$" keys matches an object field that matches each of
  its keys, recursively (a subset match);
- an object of operators ($eq, $ne, $gt, $gte, $lt, $lte, $in, $nin) matches
  when every operator holds; $gt and friends compare numbers with numbers and
  strings with strings, anything else fails them; $in takes an array and
  holds when the field equals one of its elements, $nin when it equals none
  (langgraphjs's stores have both);
- a missing field matches only $ne and $nin.

Both stores evaluate filters here, in the service, so that one filter means
the same on SQLite and on Postgres. Example::

    matches({"kind": "note", "stars": 4}, {"kind": "note", "stars": {"$gte": 3}})  # True
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from cairn_server.domain import Json


class _Missing:
    """The value of a field the item does not have."""


MISSING = _Missing()

_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}
OPERATORS = frozenset({"$eq", "$ne", "$in", "$nin", *_ORDERINGS})


def matches(value: Mapping[str, Json], filter_: Mapping[str, Json]) -> bool:
    """Whether `value` (an item's JSON object) matches `filter_`."""
    return all(_match(value.get(field, MISSING), wanted) for field, wanted in filter_.items())


def _match(actual: Json, wanted: Json) -> bool:
    if isinstance(wanted, dict):
        if any(key.startswith("$") for key in wanted):
            return all(_holds(actual, op, operand) for op, operand in wanted.items())
        return isinstance(actual, dict) and all(
            _match(actual.get(key, MISSING), sub) for key, sub in wanted.items()
        )
    return actual is not MISSING and json_equal(actual, wanted)


def _holds(actual: Json, op: str, operand: Json) -> bool:
    if op == "$eq":
        return actual is not MISSING and json_equal(actual, operand)
    if op == "$ne":
        return actual is MISSING or not json_equal(actual, operand)
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise ValueError(f"filter operator {op} takes an array, not {operand!r}")
        found = actual is not MISSING and any(json_equal(actual, item) for item in operand)
        return found if op == "$in" else not found
    ordering = _ORDERINGS.get(op)
    if ordering is None:
        raise ValueError(f"unknown filter operator {op!r}; use one of {sorted(OPERATORS)}")
    comparable = (_is_number(actual) and _is_number(operand)) or (
        isinstance(actual, str) and isinstance(operand, str)
    )
    return comparable and ordering(actual, operand)


def json_equal(a: Json, b: Json) -> bool:
    """Equality of JSON values: numbers by value (1 == 1.0), booleans apart
    from numbers, objects by their keys and values, arrays element by element."""
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(json_equal(a[key], b[key]) for key in a)
        )
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(json_equal, a, b))
    if _is_number(a):
        return _is_number(b) and bool(a == b)
    if isinstance(a, bool | str):
        return type(b) is type(a) and a == b
    return a is None and b is None


def _is_number(value: Json) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
