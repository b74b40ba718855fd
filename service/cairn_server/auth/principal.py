"""Who calls, and what they may do in which namespace.

A caller is a `Principal`: a name for the logs (`jwt:alice`, `key:ci-bot`,
`cert:CN=worker-1`) and the grants its credential carries. A grant gives one
role in one namespace (or in every namespace, `*`). Roles imply others so
that an operator grants one role per namespace rather than a list:
admin ⊇ writer ⊇ reader, and admin serves every name as a worker. `replica`
stands apart (only other Cairn replicas' relay streams hold it), so a
replica's credential cannot read or write threads.

    >>> caller = Principal("key:ci-bot", (parse_grant("team-a:writer"),))
    >>> caller.allows("team-a", Role.READER), caller.allows("team-b", Role.READER)
    (True, False)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cairn_server import namespaces

EVERY_NAMESPACE = "*"
"""A grant's namespace that covers every namespace; never a namespace itself."""


class Role(StrEnum):
    """What a grant lets its holder do in a namespace."""

    READER = "reader"
    WRITER = "writer"
    WORKER = "worker"
    ADMIN = "admin"
    REPLICA = "replica"


_IMPLIED: dict[Role, frozenset[Role]] = {
    Role.READER: frozenset({Role.READER}),
    Role.WRITER: frozenset({Role.WRITER, Role.READER}),
    Role.WORKER: frozenset({Role.WORKER}),
    Role.ADMIN: frozenset({Role.ADMIN, Role.WRITER, Role.READER, Role.WORKER}),
    Role.REPLICA: frozenset({Role.REPLICA}),
}
"""The roles a granted role includes."""


@dataclass(frozen=True, slots=True)
class Grant:
    """One role in one namespace (`*`: every namespace). `names` limits a
    worker grant to the task and entrypoint names it may serve (None: all)."""

    namespace: str
    role: Role
    names: frozenset[str] | None = None

    def covers(self, namespace: str) -> bool:
        return self.namespace in (EVERY_NAMESPACE, namespace)

    def includes(self, role: Role) -> bool:
        return role in _IMPLIED[self.role]

    def __str__(self) -> str:
        if self.names is None:
            return f"{self.namespace}:{self.role}"
        return f"{self.namespace}:{self.role}:{','.join(sorted(self.names))}"


def parse_grant(text: str) -> Grant:
    """A grant from `<namespace>:<role>` or `<namespace>:worker:<name>[,<name>...]`.

    >>> parse_grant("*:worker:fetch,summarize").names == frozenset({"fetch", "summarize"})
    True

    Raises ValueError saying what is wrong with `text`.
    """
    if not isinstance(text, str):
        raise ValueError(f"a grant must be a string, not {type(text).__name__}")
    shown = text if len(text) <= 100 else text[:100] + "..."
    parts = text.split(":", 2)
    if len(parts) < 2:
        raise ValueError(
            f"grant {shown!r} is not '<namespace>:<role>' or '<namespace>:worker:<names>'"
        )
    namespace, role_text = parts[0], parts[1]
    if namespace != EVERY_NAMESPACE and not namespaces.is_valid(namespace):
        raise ValueError(
            f"grant {shown!r}: {namespace!r} is not '*' or a namespace name (1-63 characters"
            " of a-z, 0-9, '.', '_', '-', starting with a letter or a digit)"
        )
    try:
        role = Role(role_text)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise ValueError(f"grant {shown!r}: unknown role {role_text!r} (one of {roles})") from None
    if len(parts) == 2:
        return Grant(namespace, role)
    if role is not Role.WORKER:
        raise ValueError(f"grant {shown!r}: only worker grants may list names")
    names = [name.strip() for name in parts[2].split(",")]
    if not all(names):
        raise ValueError(f"grant {shown!r}: a worker grant's names must not be empty")
    return Grant(namespace, role, frozenset(names))


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: its name for logs and audit, and its grants."""

    name: str
    grants: tuple[Grant, ...] = ()

    def allows(self, namespace: str, role: Role) -> bool:
        """Whether some grant gives `role` (or a role including it) in `namespace`.
        A worker grant limited to some names counts: `may_serve` checks the names."""
        return any(g.covers(namespace) and g.includes(role) for g in self.grants)

    def knows(self, namespace: str) -> bool:
        """Whether the caller holds any grant in `namespace`. A caller that does
        not is told NOT_FOUND, so it never learns what the namespace holds."""
        return any(g.covers(namespace) for g in self.grants)

    def may_serve(self, namespace: str, name: str) -> bool:
        """Whether the caller may register as a worker for `name` in `namespace`."""
        return any(
            g.covers(namespace) and g.includes(Role.WORKER) and (g.names is None or name in g.names)
            for g in self.grants
        )


ANONYMOUS = Principal(
    "anonymous",
    (Grant(EVERY_NAMESPACE, Role.ADMIN), Grant(EVERY_NAMESPACE, Role.REPLICA)),
)
"""Every caller when the server has no identity source (open mode, which
`cairn serve` allows only on loopback addresses unless --insecure)."""
