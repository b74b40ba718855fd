"""Record golden stream outputs from the real LangGraph library.

This script is NOT imported by the test suite. It is run by hand, in a separate
virtualenv that has LangGraph installed, to (re)generate the ``*.json`` golden
files that live next to it::

    python3 -m venv /tmp/lg-venv
    /tmp/lg-venv/bin/pip install langgraph
    /tmp/lg-venv/bin/python tests/graph/golden/record.py

Optionally pass an output directory (defaults to the directory of this file).

For every scenario it builds a ``StateGraph`` compiled with an ``InMemorySaver``,
and streams it with ``durability="sync"``, ``subgraphs=False`` and config
``{"configurable": {"thread_id": "thread-1"}}``, once with all recorded stream
modes at once and once per single mode. Each mode set uses a fresh checkpointer
and the same thread id, so every mode set sees the same history. Single modes
are passed as a one-element list (``stream_mode=["values"]``) so that chunks are
``(mode, chunk)`` pairs like in the multi-mode run.

Parallel tasks run in LangGraph's thread pool, so the order of per-task completion
chunks (updates, tasks results, debug task_result) within one superstep follows
completion order and varies between runs. The script therefore re-runs (up to
MAX_ATTEMPTS times) until the all-modes run streams task results in task start
order, and each single-mode run equals that mode's share of the all-modes run
(ids compared after normalization). It also checks that ``stream_mode="<mode>"``
(bare string) yields the same payloads, unwrapped. (``max_concurrency=1`` would
serialize tasks, but in LangGraph's sync ``stream`` it deadlocks whenever
"custom" is among the stream modes: the stream waiter occupies the only worker.)

Output file shape::

    {"langgraph_version": "...", "graph": "<description>", "input": ...,
     "runs": [{"command": ..., "stream_mode": [...], "chunks": [[mode, chunk], ...]}],
     # chain.json only:
     "state": <get_state(config)>, "history": [<get_state_history(config)>...]}

Normalization (so that a re-run produces byte-identical files):

* JSON-safe values: dataclasses (``Interrupt``) become dicts of their public
  fields, ``Send`` becomes ``{"node", "arg", "timeout"}``, named tuples become
  dicts, other tuples become lists, datetimes become ISO strings. A ``Command``
  used as a run's input is written as ``{"__type__": "Command", <non-empty fields>}``.
* Every dict is written with its keys sorted (except the top level).
* Every UUID-shaped string (8-4-4-4-12 hex, anywhere inside a string) and every
  string that is exactly 32 hex digits (interrupt ids) is replaced by
  ``"<id:N>"``, N numbered from 1 in order of first appearance over the whole
  file, traversing the top-level keys in the order above, lists in order and
  dicts in sorted key order (i.e. reading order of the written file). The same
  raw id always maps to the same placeholder within one file.
* ISO-8601 timestamps (debug ``timestamp``, snapshot ``created_at``) become ``"<ts>"``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import operator
import re
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send, interrupt

MODES = ["values", "updates", "custom", "tasks", "checkpoints", "debug"]
THREAD_ID = "thread-1"
MAX_ATTEMPTS = 200

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
HEX32_RE = re.compile(r"^[0-9a-fA-F]{32}$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)?$")


# --------------------------------------------------------------------------- JSON


def to_jsonable(obj: Any) -> Any:
    """Convert LangGraph values to plain JSON types (no id normalization yet)."""
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, datetime.datetime | datetime.date):
        return obj.isoformat()
    if isinstance(obj, Command):
        fields = {
            f.name: getattr(obj, f.name)
            for f in dataclasses.fields(obj)
            if not f.name.startswith("_")
        }
        out = {"__type__": "Command"}
        out.update({k: to_jsonable(v) for k, v in fields.items() if v not in (None, (), [], {})})
        return out
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_jsonable(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if not f.name.startswith("_")
        }
    if isinstance(obj, Send):
        return {"node": obj.node, "arg": to_jsonable(obj.arg), "timeout": to_jsonable(obj.timeout)}
    if isinstance(obj, tuple) and hasattr(obj, "_asdict"):
        return {k: to_jsonable(v) for k, v in obj._asdict().items()}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, BaseException):
        return {"__error__": type(obj).__name__, "message": str(obj)}
    raise TypeError(f"cannot make {type(obj).__name__} JSON-safe: {obj!r}")


class Normalizer:
    """Replace ids by numbered placeholders and timestamps by "<ts>"; sort dict keys."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def _id(self, raw: str) -> str:
        key = raw.lower()
        if key not in self.ids:
            self.ids[key] = f"<id:{len(self.ids) + 1}>"
        return self.ids[key]

    def __call__(self, obj: Any) -> Any:
        if isinstance(obj, str):
            if TS_RE.match(obj):
                return "<ts>"
            if HEX32_RE.match(obj):
                return self._id(obj)
            return UUID_RE.sub(lambda m: self._id(m.group(0)), obj)
        if isinstance(obj, dict):
            return {k: self(obj[k]) for k in sorted(obj)}
        if isinstance(obj, list):
            return [self(v) for v in obj]
        return obj


# ------------------------------------------------------------------- scenarios


class ChainState(TypedDict):
    value: int
    log: Annotated[list[str], operator.add]


def build_chain() -> StateGraph:
    def a(state: ChainState) -> dict[str, Any]:
        return {"value": state["value"] + 1, "log": ["a"]}

    def b(state: ChainState) -> dict[str, Any]:
        get_stream_writer()({"node": "b"})
        return {"value": state["value"] * 2, "log": ["b"]}

    g = StateGraph(ChainState)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", END)
    return g


class FanoutState(TypedDict):
    items: list[int]
    results: Annotated[list[int], operator.add]


def build_fanout() -> StateGraph:
    def router(state: FanoutState) -> list[Send]:
        return [Send("square", {"item": x}) for x in state["items"]]

    def square(arg: dict[str, Any]) -> dict[str, Any]:
        return {"results": [arg["item"] ** 2]}

    g = StateGraph(FanoutState)
    g.add_node("square", square)
    g.add_conditional_edges(START, router)
    g.add_edge("square", END)
    return g


class InterruptState(TypedDict):
    question: str
    answer: str


def build_interrupt() -> StateGraph:
    def ask(state: InterruptState) -> dict[str, Any]:
        return {"answer": interrupt(state["question"])}

    g = StateGraph(InterruptState)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    g.add_edge("ask", END)
    return g


class LoopState(TypedDict):
    count: int


def build_conditional_loop() -> StateGraph:
    def inc(state: LoopState) -> dict[str, Any]:
        return {"count": state["count"] + 1}

    def route(state: LoopState) -> str:
        return "inc" if state["count"] < 3 else END

    g = StateGraph(LoopState)
    g.add_node("inc", inc)
    g.add_edge(START, "inc")
    g.add_conditional_edges("inc", route)
    return g


class JoinState(TypedDict):
    log: Annotated[list[str], operator.add]


def build_parallel_join() -> StateGraph:
    def make(name: str) -> Callable[[JoinState], dict[str, Any]]:
        def node(state: JoinState) -> dict[str, Any]:
            return {"log": [name]}

        node.__name__ = name
        return node

    g = StateGraph(JoinState)
    for name in ("a", "b", "c"):
        g.add_node(name, make(name))
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    g.add_edge(["a", "b"], "c")
    g.add_edge("c", END)
    return g


class MixedState(TypedDict):
    items: list[int]
    log: Annotated[list[str], operator.add]


def build_mixed_send() -> StateGraph:
    def a(state: MixedState) -> dict[str, Any]:
        return {"log": ["a"]}

    def router(state: MixedState) -> list[Send]:
        return [Send("s", {"item": x}) for x in state["items"]]

    def s(arg: dict[str, Any]) -> dict[str, Any]:
        return {"log": [f"s{arg['item']}"]}

    g = StateGraph(MixedState)
    g.add_node("a", a)
    g.add_node("s", s)
    g.add_edge(START, "a")
    g.add_conditional_edges(START, router)
    g.add_edge("a", END)
    g.add_edge("s", END)
    return g


SCENARIOS: list[dict[str, Any]] = [
    {
        "name": "chain",
        "graph": (
            "State {value: int, log: Annotated[list, operator.add]}; "
            "node a returns {value: value+1, log: ['a']}; node b writes custom "
            "{'node': 'b'} via get_stream_writer() and returns {value: value*2, log: ['b']}; "
            "edges START->a->b->END"
        ),
        "build": build_chain,
        "commands": [{"value": 1, "log": []}],
        "state": True,
    },
    {
        "name": "fanout",
        "graph": (
            "State {items: list, results: Annotated[list, operator.add]}; conditional edge "
            "from START with router returning [Send('square', {'item': x}) for x in items]; "
            "node square(arg) returns {results: [arg['item'] ** 2]}; square->END"
        ),
        "build": build_fanout,
        "commands": [{"items": [1, 2, 3]}],
    },
    {
        "name": "interrupt",
        "graph": (
            "State {question: str, answer: str}; node ask returns "
            "{answer: interrupt(question)}; START->ask->END; run 1 with the input, "
            "run 2 with Command(resume='yes') on the same thread"
        ),
        "build": build_interrupt,
        "commands": [{"question": "ready?"}, Command(resume="yes")],
    },
    {
        "name": "conditional_loop",
        "graph": (
            "State {count: int}; node inc returns {count: count+1}; START->inc; conditional "
            "edge from inc: 'inc' if count < 3 else END (no path_map)"
        ),
        "build": build_conditional_loop,
        "commands": [{"count": 0}],
    },
    {
        "name": "parallel_join",
        "graph": (
            "State {log: Annotated[list, operator.add]}; nodes a and b both from START each "
            "return {log: [name]}; add_edge(['a', 'b'], 'c'); c returns {log: ['c']}; c->END"
        ),
        "build": build_parallel_join,
        "commands": [{"log": []}],
    },
    {
        "name": "breakpoints",
        "graph": (
            "chain's graph compiled with interrupt_before=['b']; run 1 with the input stops "
            "before b, run 2 with None continues"
        ),
        "build": build_chain,
        "compile": {"interrupt_before": ["b"]},
        "commands": [{"value": 1, "log": []}, None],
    },
    {
        "name": "breakpoint_after",
        "graph": (
            "chain's graph compiled with interrupt_after=['a']; run 1 with the input stops "
            "after a, run 2 with None continues"
        ),
        "build": build_chain,
        "compile": {"interrupt_after": ["a"]},
        "commands": [{"value": 1, "log": []}, None],
    },
    {
        "name": "breakpoint_after_end",
        "graph": (
            "chain's graph compiled with interrupt_after=['b'] (its last node); run 1 with the "
            "input stops after b with nothing next, run 2 with None ends the run"
        ),
        "build": build_chain,
        "compile": {"interrupt_after": ["b"]},
        "commands": [{"value": 1, "log": []}, None],
    },
    {
        "name": "mixed_send",
        "graph": (
            "State {items: list, log: Annotated[list, operator.add]}; START->a and a "
            "conditional edge from START returning [Send('s', {'item': x}) for x in items], "
            "so step 1 runs an edge-triggered node and Send tasks; a returns {log: ['a']}, "
            "s(arg) returns {log: [f's{item}']}; a->END, s->END"
        ),
        "build": build_mixed_send,
        "commands": [{"items": [1, 2]}],
    },
]


# ------------------------------------------------------------------- recording


def config() -> dict[str, Any]:
    return {"configurable": {"thread_id": THREAD_ID}}


def snapshot_to_dict(snap: Any) -> dict[str, Any]:
    return {
        "values": snap.values,
        "next": list(snap.next),
        "config": snap.config,
        "metadata": snap.metadata,
        "created_at": snap.created_at,
        "parent_config": snap.parent_config,
        "tasks": [
            {
                "id": t.id,
                "name": t.name,
                "path": t.path,
                "error": t.error,
                "interrupts": t.interrupts,
                "state": t.state,
                "result": t.result,
            }
            for t in snap.tasks
        ],
        "interrupts": snap.interrupts,
    }


def stream_all(
    build: Callable[[], StateGraph],
    commands: Iterable[Any],
    modes: Any,
    options: dict[str, Any] | None = None,
) -> tuple[Any, list[list[Any]]]:
    """Run every command on one fresh thread; return (compiled graph, per-command chunks)."""
    app = build().compile(checkpointer=InMemorySaver(), **(options or {}))
    per_command = []
    for cmd in commands:
        chunks = list(
            app.stream(cmd, config(), stream_mode=modes, subgraphs=False, durability="sync")
        )
        per_command.append(chunks)
    return app, per_command


def completion_in_task_order(per_command: list[list[Any]]) -> bool:
    """True if task results were streamed in the order the tasks were started.

    Parallel tasks run in LangGraph's thread pool, so the per-task completion chunks
    (updates, tasks results, debug task_result) follow completion order, which varies
    between runs. We keep only runs where they follow task (start) order.
    """
    for chunks in per_command:
        started = [c["id"] for m, c in chunks if m == "tasks" and "input" in c]
        finished = [c["id"] for m, c in chunks if m == "tasks" and "input" not in c]
        dbg_started = [
            c["payload"]["id"] for m, c in chunks if m == "debug" and c["type"] == "task"
        ]
        dbg_finished = [
            c["payload"]["id"] for m, c in chunks if m == "debug" and c["type"] == "task_result"
        ]
        if finished != started or dbg_finished != dbg_started:
            return False
    return True


def payloads(per_command: list[list[Any]], mode: str | None, bare: bool = False) -> Any:
    """JSON-safe, freshly normalized chunk payloads (of one mode, or all if mode is None)."""
    if bare:
        out = [[to_jsonable(c) for c in chunks] for chunks in per_command]
    else:
        out = [
            [[m, to_jsonable(c)] for m, c in chunks if mode is None or m == mode]
            for chunks in per_command
        ]
    return Normalizer()(out)


def retry(
    name: str, run: Callable[[], tuple[Any, list[list[Any]]]], ok: Callable[[Any], bool]
) -> tuple[Any, list[list[Any]]]:
    for _ in range(MAX_ATTEMPTS):
        app, per_command = run()
        if ok(per_command):
            return app, per_command
    raise AssertionError(f"{name}: no acceptable run in {MAX_ATTEMPTS} attempts")


def record(scenario: dict[str, Any]) -> dict[str, Any]:
    name, build, commands = scenario["name"], scenario["build"], scenario["commands"]

    def run(modes: Any) -> Callable[[], tuple[Any, list[list[Any]]]]:
        return lambda: stream_all(build, commands, modes, scenario.get("compile"))

    # 1. All modes at once, accepted only when task results come in task order.
    state_app, all_modes = retry(f"{name} {MODES}", run(list(MODES)), completion_in_task_order)
    recorded: list[tuple[list[str], list[list[Any]]]] = [(list(MODES), all_modes)]
    # 2. Each single mode, accepted only when equal to that mode's share of run 1. Each single
    #    mode is also checked against stream_mode="<mode>" (bare string, unwrapped chunks).
    for mode in MODES:
        expected = payloads(all_modes, mode)
        _, single = retry(
            f"{name} [{mode!r}]", run([mode]), lambda pc, e=expected, m=mode: payloads(pc, m) == e
        )
        bare_expected = [[c for _, c in chunks] for chunks in expected]
        retry(
            f"{name} {mode!r}",
            run(mode),
            lambda pc, e=bare_expected: payloads(pc, None, bare=True) == e,
        )
        recorded.append(([mode], single))

    runs: list[dict[str, Any]] = []
    for modes, per_command in recorded:
        for cmd, chunks in zip(commands, per_command, strict=True):
            runs.append(
                {
                    "command": to_jsonable(cmd),
                    "stream_mode": modes,
                    "chunks": [[m, to_jsonable(c)] for m, c in chunks],
                }
            )

    doc: dict[str, Any] = {
        "langgraph_version": version("langgraph"),
        "graph": scenario["graph"],
        "input": to_jsonable(commands[0]),
        "runs": runs,
    }
    if scenario.get("state"):
        doc["state"] = to_jsonable(snapshot_to_dict(state_app.get_state(config())))
        doc["history"] = [
            to_jsonable(snapshot_to_dict(s)) for s in state_app.get_state_history(config())
        ]
    norm = Normalizer()
    return {k: norm(v) for k, v in doc.items()}


def main(argv: list[str]) -> int:
    out_dir = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    out_dir.mkdir(parents=True, exist_ok=True)
    for scenario in SCENARIOS:
        doc = record(scenario)
        path = out_dir / f"{scenario['name']}.json"
        path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
