"""Namespaces (DESIGN.md 8.2): every thread, run, checkpoint and served name
lives in one namespace, and two namespaces may use the same thread ids and
task names without meeting.

Inside the service a thread id or a served name is *scoped*: the caller's id
in the `default` namespace is stored as it is (so stores written before
namespaces existed keep their meaning), and an id of namespace `ns` as
`ns + SEP + id`. SEP is a control character that no id may contain
(api/limits.py refuses it), so scoped keys of different namespaces never
collide. A run belongs to the namespace of its thread; its tasks are served
by the workers of that namespace. The API layer scopes what comes in and
unscopes what goes out, so callers never see a scoped key.
"""

from __future__ import annotations

import re

DEFAULT = "default"
SEP = "\x1f"
"""Between a namespace and an id in a scoped key (ASCII unit separator)."""

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
"""A namespace name: 1 to 63 characters, lower-case letters, digits, '.', '_'
and '-', starting with a letter or a digit, so that it reads well in
metadata, logs and metric labels."""


def is_valid(namespace: str) -> bool:
    """Whether `namespace` is a namespace name (`*` is not: it only appears
    in grants, meaning every namespace)."""
    return NAME.fullmatch(namespace) is not None


def scoped(namespace: str, key: str) -> str:
    """The key of `key` (a thread id or a served name) inside `namespace`."""
    return key if namespace == DEFAULT else f"{namespace}{SEP}{key}"


def beside(key: str, name: str) -> str:
    """`name` scoped by the namespace of the scoped key `key`: a task or
    graph name as the workers of a run's thread (its key) serve it."""
    namespace, sep, _ = key.partition(SEP)
    return f"{namespace}{SEP}{name}" if sep else name


def split(key: str) -> tuple[str, str]:
    """(namespace, id) of a scoped key."""
    namespace, sep, rest = key.partition(SEP)
    return (namespace, rest) if sep else (DEFAULT, key)


def namespace_of(key: str) -> str:
    return split(key)[0]


def unscoped(key: str) -> str:
    """The id as its caller knows it."""
    return split(key)[1]


def display(key: str) -> str:
    """A scoped key for logs: `ns/id`, or the id in `default`."""
    namespace, rest = split(key)
    return rest if namespace == DEFAULT else f"{namespace}/{rest}"
