"""Who the current call is from, for the servicers.

The interceptor authenticates each call and sets the caller for the task
that serves it; a servicer reads it with `current()` to scope ids to the
namespace and to check what only it can (the names a worker registers, a
relay hello). Outside an intercepted call (in-process tests, the server's
own background work) the caller is the anonymous admin in `default`, as on
an open server.

    caller = current()
    key = scoped(caller.namespace, request.thread_id)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from cairn_server.auth.principal import ANONYMOUS, Principal
from cairn_server.namespaces import DEFAULT as DEFAULT_NAMESPACE


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated principal of a call and the namespace it acts in."""

    principal: Principal
    namespace: str


OPEN_CALLER = Caller(ANONYMOUS, DEFAULT_NAMESPACE)

_current: ContextVar[Caller] = ContextVar("cairn_caller")


def current() -> Caller:
    """The caller of the call being served (OPEN_CALLER outside one)."""
    return _current.get(OPEN_CALLER)


@contextlib.contextmanager
def acting_as(caller: Caller) -> Iterator[Caller]:
    """Serve the enclosed code as `caller` (what the interceptor does per call)."""
    token = _current.set(caller)
    try:
        yield caller
    finally:
        _current.reset(token)


def set_current(caller: Caller) -> None:
    """Set the caller for the rest of this task (each gRPC call has its own task)."""
    _current.set(caller)
