"""The audit log (`cairn.audit` logger): who was refused, and who deleted,
pruned, rewrote or cancelled what.

A line names the caller, the namespace, the method and the ids in the
request (thread, run, checkpoint ids), never payload values or credentials:
an operator can answer "who deleted this thread" without the audit log
becoming a copy of the data. The same fields go in the record's `audit`
attribute for structured (JSON) log handlers.

    denied caller=key:ci-bot namespace=default method=cairn.v1.ThreadService/DeleteThread
        code=PERMISSION_DENIED peer=ipv4:10.0.0.7:51234 thread_id=t-1
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from google.protobuf.message import Message

log = logging.getLogger("cairn.audit")

MAX_IDS = 20
"""Ids of one repeated field written out; the rest are counted."""

_PLAIN = re.compile(r"[A-Za-z0-9._:/@*+=-]{1,200}")


def request_ids(request: object) -> dict[str, str]:
    """The id fields set in a request message (`thread_id`, `run_ids`,
    `source_thread_id`, ...), top level only, as text."""
    if not isinstance(request, Message):
        return {}
    found: dict[str, str] = {}
    for descriptor, value in request.ListFields():
        name = descriptor.name
        if not (name.endswith("_id") or name.endswith("_ids")):
            continue
        if descriptor.type != descriptor.TYPE_STRING:
            continue
        if isinstance(value, str):
            found[name] = value
        else:
            values = list(value)
            shown = ",".join(values[:MAX_IDS])
            more = len(values) - MAX_IDS
            found[name] = shown + (f",...(+{more})" if more > 0 else "")
    return found


def _field(value: str) -> str:
    """A value as it can stand in a line: plain, or quoted and escaped (ids
    are the caller's strings; a newline in one must not forge a line)."""
    return value if _PLAIN.fullmatch(value) else json.dumps(value)


def _line(event: str, fields: dict[str, str]) -> None:
    text = " ".join(f"{k}={_field(v)}" for k, v in fields.items())
    log.info("%s %s", event, text, extra={"audit": {"event": event, **fields}})


def denied(
    *,
    caller: str,
    namespace: str,
    method: str,
    code: str,
    reason: str,
    message: str = "",
    peer: str = "",
    request: Any = None,
) -> None:
    """A refused call: unauthenticated, rate limited or without the role.
    `message` is the one the caller was told (it never holds a credential)."""
    fields = {
        "caller": caller,
        "namespace": namespace,
        "method": method,
        "code": code,
        "reason": reason,
    }
    if peer:
        fields["peer"] = peer
    if message:
        fields["message"] = message
    _line("denied", {**fields, **request_ids(request)})


def destructive(*, caller: str, namespace: str, method: str, request: Any = None) -> None:
    """A call that deleted, pruned, rewrote or cancelled something, after it succeeded."""
    fields = {"caller": caller, "namespace": namespace, "method": method}
    _line("destructive", {**fields, **request_ids(request)})
