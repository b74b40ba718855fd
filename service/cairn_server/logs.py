"""How the server logs: text lines for people, or JSON lines for a log
pipeline (`cairn serve --log-format json`), and the ids a line is about.

A line about a thread, run or task carries their ids as the caller knows
them (thread ids unscoped, plus the namespace) in the record's `ids`
attribute, which the call site fills with `extra=ids(...)`:

    log.info("resuming run %s", run.run_id, extra=logs.ids(run=run))

The JSON format writes one object per line:

    {"time": "2025-01-31T09:12:03.201Z", "level": "INFO",
     "logger": "cairn_server.runtime.handle", "message": "run r-1: task ...",
     "namespace": "team-a", "thread_id": "t-1", "run_id": "r-1", "target": "agent",
     "task_id": "...", "task_name": "fetch"}

with `exception` (the formatted traceback) when the line has one and
`audit` (the fields of cairn.audit lines, auth/audit.py) on audit lines.
The text format is the one people read: the message alone, the ids being
in its words already.

What the server logs of strings its clients chose (worker ids, identities,
thread ids, names) is at most a short prefix (`clip`), so that no request
can turn into a huge log line.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TextIO

from cairn_server import namespaces

if TYPE_CHECKING:
    from cairn_server.dispatch.messages import Assignment
    from cairn_server.domain import RunRecord

MAX_LOGGED_CHARS = 100

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""The text format, as `cairn serve` always wrote it."""

Format = Literal["text", "json"]
FORMATS: tuple[Format, ...] = ("text", "json")

IDS = "ids"
"""The LogRecord attribute holding the ids a line is about."""

_format: Format = "text"


def clip(text: str, limit: int = MAX_LOGGED_CHARS) -> str:
    """`text` if it is short, else its start and its full length:
    `clip("x" * 300)` is `"xxx…(300 chars)"` with `limit` x's."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…({len(text)} chars)"


def ids(
    *,
    run: RunRecord | None = None,
    assignment: Assignment | None = None,
    thread_id: str = "",
    run_id: str = "",
    task_id: str = "",
    task_name: str = "",
    worker_id: str = "",
    namespace: str = "",
) -> dict[str, dict[str, str]]:
    """The `extra=` of a log call about a run, a task or a worker: the ids
    of `run` or `assignment`, overridden by those given by name. Thread ids
    are the service's scoped keys; the line names the caller's id and its
    namespace."""
    found: dict[str, str] = {}
    if run is not None:
        found.update(thread_id=run.thread_id, run_id=run.run_id, target=run.target)
    if assignment is not None:
        found.update(
            thread_id=assignment.thread_id,
            run_id=assignment.run_id,
            task_id=assignment.task_id,
            task_name=assignment.name,
        )
    given = {
        "thread_id": thread_id,
        "run_id": run_id,
        "task_id": task_id,
        "task_name": task_name,
        "worker_id": worker_id,
        "namespace": namespace,
    }
    found.update({key: value for key, value in given.items() if value})
    if found.get("thread_id"):
        found["namespace"], found["thread_id"] = namespaces.split(found["thread_id"])
    return {IDS: {key: clip(found[key]) for key in _ORDER if found.get(key)}}


_ORDER = ("namespace", "thread_id", "run_id", "target", "task_id", "task_name", "worker_id")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (RFC 3339, UTC), level, logger,
    message, the ids the record is about, `exception` and `audit`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        found = getattr(record, IDS, None)
        if isinstance(found, dict):
            entry.update(found)
        audit = getattr(record, "audit", None)
        if isinstance(audit, dict):
            entry["audit"] = audit
            if isinstance(audit.get("namespace"), str):
                entry.setdefault("namespace", audit["namespace"])
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _rfc3339(created: float) -> str:
    moment = datetime.fromtimestamp(created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def formatter(log_format: Format) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure(level: str, log_format: Format = "text", stream: TextIO | None = None) -> None:
    """Log to `stream` (stderr) at `level` in `log_format`, replacing the
    root logger's handlers (as `logging.basicConfig(force=True)`)."""
    global _format
    _format = log_format
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def announce(message: str, stream: TextIO | None = None) -> None:
    """Print a line the operator must see whatever the log level (that the
    server serves, and where): as it is, or as a JSON log line when logs
    are JSON, so that the whole output stays one format."""
    if _format == "json":
        record = logging.LogRecord("cairn_server.cli", logging.INFO, "", 0, message, None, None)
        message = JsonFormatter().format(record)
    print(message, file=stream if stream is not None else sys.stdout, flush=True)
