"""`cairn threads|state|history|runs|workers|memories|schedules`: read a
server's threads, workers, long-term memories and schedules as tables;
`cairn cancel RUN_ID` stops a run, and `cairn schedules ACTION SCHEDULE_ID`
pauses, resumes, triggers or deletes a schedule. `cairn runs` without a
thread lists the runs of every thread of the namespace, and `--waiting`
only those that wait on a worker, a retry or a timer (a sleep).
`cairn memories users u-42` lists the memories under a namespace path,
newest update first (`--filter '{"kind": "food"}'`), and `--namespaces` the
namespace paths under it; reading never refreshes an item's TTL.

They call the public API (the Python SDK's client), so they show what any
client sees, LangGraph threads stored through CheckpointService included.
`--json` prints the whole record instead, for scripts.

Each takes the SDK's connection settings as options, every one defaulting to
its CAIRN_* environment variable (read by the SDK): `--token` or `--api-key`
(prefer CAIRN_TOKEN / CAIRN_API_KEY: arguments show in the process list),
`--namespace`, and `--tls`, `--tls-ca`, `--tls-cert`, `--tls-key`,
`--tls-server-name`:

    CAIRN_API_KEY=cairn_... cairn threads --address cairn.internal:50051 \
        --namespace team-a --tls-ca ca.pem
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from cairn import CairnError, SyncClient, TlsConfig

_WIDTH = 60
"""Longest cell of a table; longer values are cut with an ellipsis."""


def add_commands(commands: Any) -> None:
    """Add the inspection sub-commands to the `cairn` parser."""
    threads = commands.add_parser("threads", help="list threads, newest first")
    threads.add_argument("--status", choices=["idle", "busy", "interrupted", "error"])
    threads.add_argument("--limit", type=int, default=20)
    state = commands.add_parser("state", help="a thread's state at its latest checkpoint")
    state.add_argument("thread_id")
    state.add_argument("--checkpoint", default="", help="a checkpoint id instead of the latest")
    history = commands.add_parser("history", help="a thread's checkpoints, newest first")
    history.add_argument("thread_id")
    history.add_argument("--limit", type=int, default=20)
    runs = commands.add_parser(
        "runs", help="a thread's runs, or those of every thread of the namespace, newest first"
    )
    runs.add_argument(
        "thread_id", nargs="?", help="the thread; without it, every thread of the namespace"
    )
    runs.add_argument(
        "--state",
        choices=["pending", "running", "interrupted", "succeeded", "failed", "cancelled"],
    )
    runs.add_argument(
        "--waiting",
        action="store_true",
        help="only the runs that wait on a worker, a retry or a timer",
    )
    runs.add_argument("--limit", type=int, default=20)
    cancel = commands.add_parser("cancel", help="cancel an active run; prints its final state")
    cancel.add_argument("run_id")
    workers = commands.add_parser(
        "workers", help="the workers connected to the server at --address, with free slots"
    )
    memories = commands.add_parser(
        "memories",
        help="long-term memories under a namespace path, newest update first",
    )
    memories.add_argument("prefix", nargs="*", help="namespace labels; none: every memory")
    memories.add_argument(
        "--filter", type=json.loads, default=None, help="a JSON filter, as search's"
    )
    memories.add_argument(
        "--namespaces", action="store_true", help="list the namespace paths instead"
    )
    memories.add_argument("--limit", type=int, default=20)
    memories.add_argument("--offset", type=int, default=0)
    schedules = commands.add_parser(
        "schedules",
        help="the namespace's schedules, by id; or pause, resume, trigger or delete one",
    )
    schedules.add_argument(
        "action",
        nargs="?",
        default="list",
        choices=["list", "pause", "resume", "trigger", "delete"],
    )
    schedules.add_argument("schedule_id", nargs="?", help="the schedule (all but list)")
    schedules.add_argument("--limit", type=int, default=100)
    named = {
        "threads": threads,
        "state": state,
        "history": history,
        "runs": runs,
        "cancel": cancel,
        "workers": workers,
        "memories": memories,
        "schedules": schedules,
    }
    for name, command in named.items():
        command.add_argument("--address", default="127.0.0.1:50051")
        command.add_argument("--json", action="store_true", help="print JSON records")
        command.add_argument(
            "--failover-timeout",
            type=float,
            default=5.0,
            metavar="SECONDS",
            help="how long to keep trying a server that cannot be reached (default 5)",
        )
        add_connection_options(command)
        command.set_defaults(inspect=_COMMANDS[name])


def add_connection_options(command: argparse.ArgumentParser) -> None:
    """Add the SDK's credential, namespace and TLS options to a command. Each
    defaults to None, so that the SDK reads its CAIRN_* variable."""
    group = command.add_argument_group(
        "identity and TLS (each defaults to its CAIRN_* environment variable)"
    )
    credential = group.add_mutually_exclusive_group()
    credential.add_argument(
        "--token", metavar="JWT", help="a JWT to send as the bearer credential (CAIRN_TOKEN)"
    )
    credential.add_argument(
        "--api-key", metavar="KEY", help="an API key (cairn_...) to send instead (CAIRN_API_KEY)"
    )
    group.add_argument(
        "--namespace", help="the namespace to act in (CAIRN_NAMESPACE; the server's default)"
    )
    group.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="connect with TLS, verified against the system's roots (CAIRN_TLS);"
        " --no-tls for plaintext",
    )
    group.add_argument(
        "--tls-ca", metavar="PEM", help="the CA of the server's certificate (CAIRN_TLS_CA)"
    )
    group.add_argument(
        "--tls-cert", metavar="PEM", help="a client certificate, for mTLS (CAIRN_TLS_CERT)"
    )
    group.add_argument("--tls-key", metavar="PEM", help="its private key (CAIRN_TLS_KEY)")
    group.add_argument(
        "--tls-server-name",
        metavar="NAME",
        help="the name the server's certificate must carry (CAIRN_TLS_SERVER_NAME)",
    )


def connection_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `SyncClient` for the options of
    `add_connection_options`: None where not given, for the SDK to read the
    environment. A `--tls-*` option turns TLS on; settings it leaves unset
    still come from CAIRN_TLS_*."""
    files = {
        "ca_file": args.tls_ca,
        "cert_file": args.tls_cert,
        "key_file": args.tls_key,
        "server_name": args.tls_server_name,
    }
    tls: bool | TlsConfig | None = args.tls
    if any(value is not None for value in files.values()):
        if args.tls is False:
            raise ValueError("--no-tls contradicts the --tls-* options")
        tls = TlsConfig(**files)
    return {"token": args.token, "api_key": args.api_key, "namespace": args.namespace, "tls": tls}


def run(args: argparse.Namespace) -> int:
    """Run an inspection command; 1 with the error's reason when it fails (or
    when the connection options are wrong: a TLS file that cannot be read)."""
    try:
        client = SyncClient(
            args.address,
            timeout=10.0,
            failover_timeout=args.failover_timeout,
            **connection_options(args),
        )
    except ValueError as error:
        print(f"cairn {args.command}: {error}", file=sys.stderr)
        return 1
    try:
        with client:
            found = args.inspect(client, args)
    except CairnError as error:
        print(f"{type(error).__name__}: {error.reason}: {error}")
        return 1
    except ValueError as error:  # a command without what it needs
        print(f"cairn {args.command}: {error}", file=sys.stderr)
        return 2
    print(json.dumps(_plain(found), indent=2) if args.json else _render(args, found))
    return 0


def _threads(client: SyncClient, args: argparse.Namespace) -> Any:
    return client.list_threads(status=args.status, limit=args.limit)


def _state(client: SyncClient, args: argparse.Namespace) -> Any:
    return client.get_state(args.thread_id, checkpoint_id=args.checkpoint)


def _history(client: SyncClient, args: argparse.Namespace) -> Any:
    return client.get_state_history(args.thread_id, limit=args.limit)


def _runs(client: SyncClient, args: argparse.Namespace) -> Any:
    return client.list_runs(
        args.thread_id, state=args.state, waiting=args.waiting, limit=args.limit
    )


def _cancel(client: SyncClient, args: argparse.Namespace) -> Any:
    return client.cancel_run(args.run_id)


def _workers(client: SyncClient, args: argparse.Namespace) -> Any:
    return client.list_workers()


def _memories(client: SyncClient, args: argparse.Namespace) -> Any:
    prefix = tuple(args.prefix)
    if args.namespaces:
        return client.store.list_namespaces(prefix=prefix, limit=args.limit, offset=args.offset)
    return client.store.search(
        prefix, filter=args.filter, limit=args.limit, offset=args.offset, refresh_ttl=False
    )


def _schedules(client: SyncClient, args: argparse.Namespace) -> Any:
    if args.action == "list":
        return client.schedules.list(limit=args.limit)
    if not args.schedule_id:
        raise ValueError(f"cairn schedules {args.action} needs a schedule id")
    act: Callable[[str], Any] = getattr(client.schedules, args.action)
    return act(args.schedule_id)


_COMMANDS: dict[str, Callable[[SyncClient, argparse.Namespace], Any]] = {
    "threads": _threads,
    "state": _state,
    "history": _history,
    "runs": _runs,
    "cancel": _cancel,
    "workers": _workers,
    "memories": _memories,
    "schedules": _schedules,
}


def _render(args: argparse.Namespace, found: Any) -> str:
    kind = args.command
    if kind == "threads":
        return table(
            ["THREAD", "STATUS", "UPDATED", "METADATA"],
            [[t.thread_id, t.status, t.updated_at, t.metadata] for t in found],
        )
    if kind == "runs":
        headers = ["RUN", "TARGET", "STATE", "CREATED", "WAITING", "OUTPUT / ERROR"]
        rows = [
            [
                r.run_id,
                r.target,
                r.state,
                r.created_at,
                _waiting(r.waiting),
                _outcome(r.error, r.output),
            ]
            for r in found
        ]
        if not args.thread_id:  # runs of several threads say whose they are
            headers.insert(1, "THREAD")
            for row, r in zip(rows, found, strict=True):
                row.insert(1, r.thread_id)
        return table(headers, rows)
    if kind == "cancel":
        return f"run {found.run_id} {found.state.value}"
    if kind == "workers":
        return _render_workers(args, found)
    if kind == "memories" and args.namespaces:
        return table(["NAMESPACE"], [["/".join(path)] for path in found])
    if kind == "memories":
        return table(
            ["NAMESPACE", "KEY", "UPDATED", "EXPIRES", "VALUE"],
            [["/".join(m.namespace), m.key, m.updated_at, m.expires_at, m.value] for m in found],
        )
    if kind == "schedules":
        return _render_schedules(args, found)
    if kind == "history":
        return table(
            ["CHECKPOINT", "STEP", "SOURCE", "NEXT", "CREATED"],
            [
                [
                    s.config["configurable"]["checkpoint_id"],
                    s.metadata.get("step"),
                    s.metadata.get("source"),
                    ", ".join(s.next),
                    s.created_at,
                ]
                for s in found
            ],
        )
    return _render_state(found)


def _render_schedules(args: argparse.Namespace, found: Any) -> str:
    """The list as a table; an action's result in a line."""
    if args.action == "delete":
        return f"schedule {args.schedule_id} deleted"
    if args.action == "trigger":
        done = found.run_id and f"run {found.run_id} on thread {found.thread_id}"
        return f"firing {found.firing_id} {found.state.value}: {done or found.message}"
    if args.action != "list":
        found = [found]
    rows = []
    for s in found:
        last = s.recent_firings[0] if s.recent_firings else None
        when = s.cron if s.cron is not None else f"every {s.interval}"
        rows.append(
            [
                s.schedule_id,
                s.target,
                f"{when} {s.time_zone}".strip(),
                "paused" if s.paused else s.next_fire_at,
                s.thread_id or "new per firing",
                f"{s.overlap_policy.value}, {s.catchup_policy.value}",
                last and f"{last.state.value} {last.run_id or last.message}".strip(),
            ]
        )
    headers = ["SCHEDULE", "TARGET", "WHEN", "NEXT (UTC)", "THREAD", "OVERLAP, CATCH-UP"]
    return table([*headers, "LAST FIRING"], rows)


def _render_workers(args: argparse.Namespace, workers: Sequence[Any]) -> str:
    """One row per worker, its served names one per line below each other."""
    if not workers:
        return f"no workers connected to {args.address}"
    rows: list[list[Any]] = []
    for w in workers:
        names = [
            *(f"{n} (graph)" for n in w.graphs),
            *(f"{n} (entrypoint)" for n in w.entrypoints),
            *(f"{n} (task)" for n in w.tasks),
        ]
        first = [
            w.worker_id,
            w.replica_id,
            f"{w.sdk_language} {w.sdk_version}".strip(),
            w.identity,
            f"{w.free_task_slots} of {w.max_concurrency}",
            f"{w.free_entrypoint_slots} of {w.max_entrypoints}",
        ]
        rows.append([*first, names[0] if names else ""])
        rows.extend([*([""] * len(first)), name] for name in names[1:])
    headers = ["WORKER", "REPLICA", "SDK", "IDENTITY", "FREE TASK SLOTS", "FREE ENTRYPOINT SLOTS"]
    return table([*headers, "SERVES"], rows)


def _render_state(state: Any) -> str:
    checkpoint = (state.config or {}).get("configurable", {}).get("checkpoint_id", "")
    lines = [
        f"checkpoint  {checkpoint or '(none)'}",
        f"step        {state.metadata.get('step', '')}",
        f"next        {', '.join(state.next) or '(done)'}",
    ]
    if state.tasks:
        lines += ["", "tasks"]
        lines += _indent(
            table(
                ["ID", "NAME", "RESULT / ERROR", "INTERRUPTS"],
                [
                    [
                        t.id,
                        t.name,
                        _outcome(t.error, t.result),
                        len(t.interrupts) or "",
                    ]
                    for t in state.tasks
                ],
            )
        )
    if state.interrupts:
        lines += ["", "interrupts"]
        lines += _indent(
            table(["ID", "TASK", "VALUE"], [[i.id, i.task_name, i.value] for i in state.interrupts])
        )
    lines += ["", "values"]
    lines += _indent(json.dumps(_plain(state.values), indent=2, ensure_ascii=False))
    return "\n".join(lines)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: one line per row, columns padded to their widest cell."""
    cells = [list(headers), *([_cell(value) for value in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in cells)
    return "\n".join(line.rstrip() for line in lines)


_WAIT_REASONS = {
    "no_worker": "no worker serves {name}",
    "worker_busy": "workers busy for {name}",
    "retry_backoff": "{name} retries at {until}",
    "timer": "{name} sleeps until {until_day}",
}


def _waiting(waiting: Sequence[Any]) -> str:
    """What an active run waits on, e.g. `no worker serves 'fetch' since 10:02:03`
    (times in UTC, as CREATED)."""
    return "; ".join(
        _WAIT_REASONS[w.reason.value].format(
            name=repr(w.task_name),
            until=w.until.strftime("%H:%M:%S") if w.until else "?",
            until_day=w.until.strftime("%Y-%m-%d %H:%M:%S") if w.until else "?",
        )
        + (f" since {w.since.strftime('%H:%M:%S')}" if w.since else "")
        for w in waiting
    )


def _outcome(error: Any, result: Any) -> Any:
    return f"{error.type}: {error.message}" if error is not None else result


def _cell(value: Any) -> str:
    if value is None:
        text = ""
    elif isinstance(value, datetime):
        text = value.isoformat(timespec="seconds")
    elif isinstance(value, enum.Enum):
        text = str(value.value)
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":"))
    text = " ".join(text.split())
    return text if len(text) <= _WIDTH else text[: _WIDTH - 1] + "…"


def _indent(text: str) -> list[str]:
    return ["  " + line for line in text.splitlines()]


def _plain(value: Any) -> Any:
    """The SDK's records as JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):  # a schedule's interval
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return value.value
    return value
