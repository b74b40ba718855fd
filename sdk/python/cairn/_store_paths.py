"""The texts of an item that semantic search embeds, picked by LangGraph's
field paths (`index={"fields": [...]}` and `put(..., index=[...])`).

    texts_at_path({"memory": {"text": "likes otters"}}, "memory.text")
    # ["likes otters"]
    texts_at_path({"tags": ["a", "b"]}, "tags[*]")        # ["a", "b"]
    texts_at_path({"tags": ["a", "b"]}, "tags[-1]")       # ["b"]
    texts_at_path({"a": 1, "b": "x"}, "{a,b}")            # ["1", "x"]
    texts_at_path({"a": 1}, "$")                          # ['{"a": 1}']

A path is field names joined by ".", array positions in brackets (`[0]`,
`[-1]` from the end, `[*]` every element), `*` for every value of an object
or array, and `{f,g.h}` for several fields of one object. A text is a string
as it is, a number or boolean as `str()` gives it, an array or object as JSON
with sorted keys; missing fields and nulls give no text. These are the rules
of LangGraph's stores, so that an item embeds the same texts in either.
"""

from __future__ import annotations

import json
from typing import Any

WHOLE = "$"
"""The path of the whole value, embedded as one JSON text."""


def tokenize(path: str) -> list[str]:
    """The steps of `path`: field names, `[...]` and `{...}` groups."""
    steps: list[str] = []
    name: list[str] = []
    i = 0
    while i < len(path):
        char = path[i]
        if char in "[{":
            if name:
                steps.append("".join(name))
                name = []
            end = _closing(path, i)
            steps.append(path[i:end])
            i = end
        elif char == ".":
            if name:
                steps.append("".join(name))
                name = []
            i += 1
        else:
            name.append(char)
            i += 1
    if name:
        steps.append("".join(name))
    return steps


def _closing(path: str, start: int) -> int:
    """The index after the bracket that closes the one at `start` (the end
    of `path` when it is never closed)."""
    opening = path[start]
    closing = "]" if opening == "[" else "}"
    depth = 0
    for i in range(start, len(path)):
        if path[i] == opening:
            depth += 1
        elif path[i] == closing:
            depth -= 1
            if depth == 0:
                return i + 1
    return len(path)


def texts_at_path(value: Any, path: str) -> list[str]:
    """The texts at `path` in `value` (see the module's docstring)."""
    if not path or path == WHOLE:
        return [_dumps(value)]
    return _walk(value, tokenize(path))


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _leaf(value: Any) -> list[str]:
    if isinstance(value, str | bool | int | float):
        return [str(value)]
    if isinstance(value, list | dict):
        return [_dumps(value)]
    return []


def _walk(value: Any, steps: list[str]) -> list[str]:
    if not steps:
        return _leaf(value)
    step, rest = steps[0], steps[1:]
    if step.startswith("[") and step.endswith("]"):
        if not isinstance(value, list):
            return []
        position = step[1:-1]
        if position == "*":
            return [text for element in value for text in _walk(element, rest)]
        try:
            index = int(position)
        except ValueError:
            return []
        if index < 0:
            index += len(value)
        return _walk(value[index], rest) if 0 <= index < len(value) else []
    if step.startswith("{") and step.endswith("}"):
        return _fields(value, step[1:-1]) if isinstance(value, dict) else []
    if step == "*":
        children = value.values() if isinstance(value, dict) else value
        if not isinstance(value, dict | list):
            return []
        return [text for child in children for text in _walk(child, rest)]
    if isinstance(value, dict) and step in value:
        return _walk(value[step], rest)
    return []


def _fields(value: dict[str, Any], names: str) -> list[str]:
    """The texts of several fields of one object (`{a,b.c}`): each a plain
    chain of names; a missing or null field gives nothing."""
    texts: list[str] = []
    for name in names.split(","):
        found: Any = value
        for step in tokenize(name.strip()):
            if not isinstance(found, dict) or step not in found:
                found = None
                break
            found = found[step]
        if found is not None:
            texts.extend(_leaf(found))
    return texts
