"""Namespace paths as both stores keep them, and ListNamespaces' selection.

A path is stored as its labels each followed by "." (which no label
contains): ("users", "u1") is "users.u1.". The paths under a prefix are then
the strings in one range, [prefix, prefix with its last "." made "/"), that
an index serves, and ("a", "bc") never falls under ("a", "b").
"""

from __future__ import annotations

from collections.abc import Iterable

from cairn_server.memory.base import ListNamespaces, Path

SEPARATOR = "."
_AFTER_SEPARATOR = chr(ord(SEPARATOR) + 1)
WILDCARD = "*"


def encode(path: Path) -> str:
    return "".join(label + SEPARATOR for label in path)


def decode(text: str) -> Path:
    return tuple(text.split(SEPARATOR)[:-1])


def bounds(prefix: Path) -> tuple[str, str] | None:
    """The range [low, high) of the stored paths that start with `prefix`
    (None: every path)."""
    if not prefix:
        return None
    low = encode(prefix)
    return low, low[:-1] + _AFTER_SEPARATOR


def literal_head(pattern: Path) -> Path:
    """The labels of a ListNamespaces prefix before its first wildcard: the
    part a query can narrow by."""
    for index, label in enumerate(pattern):
        if label == WILDCARD:
            return pattern[:index]
    return pattern


def _starts_with(path: Path, pattern: Path) -> bool:
    return len(path) >= len(pattern) and all(
        want in (WILDCARD, label) for label, want in zip(path, pattern, strict=False)
    )


def select(paths: Iterable[Path], op: ListNamespaces) -> list[Path]:
    """The paths ListNamespaces returns: those matching the prefix and the
    suffix, cut to max_depth (once each), sorted by labels, then paged."""
    suffix = op.suffix[::-1]
    chosen = {
        path[: op.max_depth] if op.max_depth is not None else path
        for path in paths
        if _starts_with(path, op.prefix) and _starts_with(path[::-1], suffix)
    }
    return sorted(chosen)[op.offset : op.offset + op.limit]
