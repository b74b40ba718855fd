"""The caller's namespace applied to the ids of a request (DESIGN.md 8.2).

Every servicer turns the thread ids of a request into scoped keys here
(cairn_server/namespaces.py) and checks that a run it was asked about by id
belongs to the caller's namespace: a caller never learns that another
namespace's thread or run exists, it is simply not found.
"""

from __future__ import annotations

from cairn_server import namespaces
from cairn_server.auth import current
from cairn_server.domain import RunRecord
from cairn_server.errors import error_for


def namespace() -> str:
    """The namespace of the call (its `cairn-namespace` metadata)."""
    return current().namespace


def thread_key(thread_id: str) -> str:
    """`thread_id` of the caller's namespace, as the store knows it."""
    return namespaces.scoped(namespace(), thread_id)


def owned_run(run: RunRecord) -> RunRecord:
    """`run` when it is of the caller's namespace, else RUN_NOT_FOUND, the
    answer for a run that does not exist at all."""
    if namespaces.namespace_of(run.thread_id) != namespace():
        raise error_for("RUN_NOT_FOUND", f"run {run.run_id!r} does not exist", run_id=run.run_id)
    return run
