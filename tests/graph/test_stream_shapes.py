"""Graph API stream chunks against LangGraph's (golden/*.json, see golden/README.md).

Each golden scenario is rebuilt with Cairn's SDK (same node names and logic)
and streamed through a real server and worker with the same stream modes and
durability "sync", once per mode set as the recorder did, on a fresh server so
every mode set sees a fresh thread "thread-1". Cairn's chunks are normalized as
the recorder normalized LangGraph's: ids numbered in order of first appearance
("<id:N>"), timestamps "<ts>", keys sorted. Ids are numbered afresh per mode
set on both sides, so they line up even though Cairn's are its own UUIDs.

Parallel tasks finish in any order, on LangGraph's thread pool and on Cairn's
workers, so the chunks a task's completion produces (updates, tasks result,
debug task_result) are compared as a set within each run of such chunks.
"""

from __future__ import annotations

import json
import operator
import pathlib
import re
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

import pytest

from cairn import (
    END,
    START,
    Client,
    Command,
    CompiledStateGraph,
    Send,
    StateGraph,
    get_stream_writer,
    interrupt,
)

GOLDEN = pathlib.Path(__file__).with_name("golden")
MODES = ["values", "updates", "custom", "tasks", "checkpoints", "debug"]
MODE_SETS = [MODES, *([mode] for mode in MODES)]
THREAD_ID = "thread-1"  # as the recorder's config: it shows in checkpoint configs


# --- the golden scenarios, built with Cairn's SDK ----------------------------------


class ChainState(TypedDict):
    value: int
    log: Annotated[list[str], operator.add]


def chain_a(state: ChainState) -> dict[str, Any]:
    return {"value": state["value"] + 1, "log": ["a"]}


def chain_b(state: ChainState) -> dict[str, Any]:
    get_stream_writer()({"node": "b"})
    return {"value": state["value"] * 2, "log": ["b"]}


chain = (
    StateGraph(ChainState)
    .add_node("a", chain_a)
    .add_node("b", chain_b)
    .add_edge(START, "a")
    .add_edge("a", "b")
    .add_edge("b", END)
    .compile(name="shapes_chain")
)


class FanoutState(TypedDict):
    items: list[int]
    results: Annotated[list[int], operator.add]


def router(state: FanoutState) -> list[Send]:
    return [Send("square", {"item": x}) for x in state["items"]]


def square(arg: dict[str, Any]) -> dict[str, Any]:
    return {"results": [arg["item"] ** 2]}


fanout = (
    StateGraph(FanoutState)
    .add_node("square", square)
    .add_conditional_edges(START, router)
    .add_edge("square", END)
    .compile(name="shapes_fanout")
)


class InterruptState(TypedDict):
    question: str
    answer: str


def ask(state: InterruptState) -> dict[str, Any]:
    return {"answer": interrupt(state["question"])}


interrupting = (
    StateGraph(InterruptState)
    .add_node("ask", ask)
    .add_edge(START, "ask")
    .add_edge("ask", END)
    .compile(name="shapes_interrupt")
)


class LoopState(TypedDict):
    count: int


def inc(state: LoopState) -> dict[str, Any]:
    return {"count": state["count"] + 1}


def route(state: LoopState) -> str:
    return "inc" if state["count"] < 3 else END


conditional_loop = (
    StateGraph(LoopState)
    .add_node("inc", inc)
    .add_edge(START, "inc")
    .add_conditional_edges("inc", route)
    .compile(name="shapes_conditional_loop")
)


class JoinState(TypedDict):
    log: Annotated[list[str], operator.add]


def make(name: str) -> Callable[[JoinState], dict[str, Any]]:
    def node(state: JoinState) -> dict[str, Any]:
        return {"log": [name]}

    node.__name__ = f"join_{name}"
    return node


parallel_join = (
    StateGraph(JoinState)
    .add_node("a", make("a"))
    .add_node("b", make("b"))
    .add_node("c", make("c"))
    .add_edge(START, "a")
    .add_edge(START, "b")
    .add_edge(["a", "b"], "c")
    .add_edge("c", END)
    .compile(name="shapes_parallel_join")
)


def chain_builder() -> StateGraph:
    return (
        StateGraph(ChainState)
        .add_node("a", chain_a)
        .add_node("b", chain_b)
        .add_edge(START, "a")
        .add_edge("a", "b")
        .add_edge("b", END)
    )


class MixedState(TypedDict):
    items: list[int]
    log: Annotated[list[str], operator.add]


def mixed_a(state: MixedState) -> dict[str, Any]:
    return {"log": ["a"]}


def mixed_router(state: MixedState) -> list[Send]:
    return [Send("s", {"item": x}) for x in state["items"]]


def mixed_s(arg: dict[str, Any]) -> dict[str, Any]:
    return {"log": [f"s{arg['item']}"]}


mixed_send = (
    StateGraph(MixedState)
    .add_node("a", mixed_a)
    .add_node("s", mixed_s)
    .add_edge(START, "a")
    .add_conditional_edges(START, mixed_router)
    .add_edge("a", END)
    .add_edge("s", END)
    .compile(name="shapes_mixed_send")
)

SCENARIOS: dict[str, CompiledStateGraph] = {
    "breakpoints": chain_builder().compile(name="shapes_breakpoints", interrupt_before=["b"]),
    "breakpoint_after": chain_builder().compile(
        name="shapes_breakpoint_after", interrupt_after=["a"]
    ),
    "breakpoint_after_end": chain_builder().compile(
        name="shapes_breakpoint_after_end", interrupt_after=["b"]
    ),
    "mixed_send": mixed_send,
    "chain": chain,
    "fanout": fanout,
    "interrupt": interrupting,
    "conditional_loop": conditional_loop,
    "parallel_join": parallel_join,
}

# --- normalization (as golden/record.py's) ----------------------------------------------

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
HEX32_RE = re.compile(r"^[0-9a-fA-F]{32}$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)?$")
PLACEHOLDER_RE = re.compile(r"<id:\d+>")


class Normalizer:
    """Ids -> "<id:N>" by first appearance (lists in order, dict keys sorted),
    timestamps -> "<ts>", dict keys sorted. Applied to the golden's chunks it
    renumbers their placeholders afresh."""

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
            obj = PLACEHOLDER_RE.sub(lambda m: self._id(m.group(0)), obj)
            return UUID_RE.sub(lambda m: self._id(m.group(0)), obj)
        if isinstance(obj, dict):
            return {k: self(obj[k]) for k in sorted(obj)}
        if isinstance(obj, list | tuple):
            return [self(v) for v in obj]
        return obj


# --- comparing ------------------------------------------------------------------------------

# The chunks one task's completion produces, in LangGraph's order.
COMPLETION_ORDER = {"updates": 0, "tasks": 1, "debug": 2}


def completion_kind(chunk: list[Any]) -> str | None:
    mode, data = chunk
    if mode == "updates" and "__interrupt__" not in data:
        return "updates"
    if mode == "tasks" and "result" in data:
        return "tasks"
    if mode == "debug" and data["type"] == "task_result":
        return "debug"
    return None


def canonical(chunks: list[Any]) -> list[str]:
    """One line per chunk; a run of task completion chunks becomes one line
    per task (its updates, tasks result and debug task_result), sorted."""
    lines: list[str] = []
    units: list[list[str]] = []
    last = -1
    for chunk in chunks:
        kind = completion_kind(chunk)
        if kind is None:
            lines.extend(sorted(" + ".join(unit) for unit in units))
            units, last = [], -1
            lines.append(json.dumps(chunk, sort_keys=True))
            continue
        if COMPLETION_ORDER[kind] <= last or not units:
            units.append([])
        units[-1].append(json.dumps(chunk, sort_keys=True))
        last = COMPLETION_ORDER[kind]
    lines.extend(sorted(" + ".join(unit) for unit in units))
    return lines


def golden(scenario: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDEN / f"{scenario}.json").read_text())
    return data


def command_of(recorded: Any) -> Any:
    if isinstance(recorded, dict) and recorded.get("__type__") == "Command":
        return Command(resume=recorded["resume"])
    return recorded


async def stream_chunks(
    client: Client, graph: CompiledStateGraph, command: Any, modes: list[str]
) -> list[Any]:
    return [
        [event.mode, event.data]
        async for event in client.stream(
            graph, command, thread_id=THREAD_ID, stream_mode=modes, durability="sync"
        )
        if event.mode != "lifecycle"
    ]


@pytest.mark.parametrize("modes", MODE_SETS, ids=["all", *MODES])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_stream_chunks_match_langgraph(
    client: Client, start_worker, scenario: str, modes: list[str]
) -> None:
    graph = SCENARIOS[scenario]
    await start_worker([graph])
    runs = [run for run in golden(scenario)["runs"] if run["stream_mode"] == modes]
    assert runs, f"{scenario}: no golden run for {modes}"
    actual = [await stream_chunks(client, graph, command_of(r["command"]), modes) for r in runs]
    expected = [r["chunks"] for r in runs]
    actual, expected = Normalizer()(actual), Normalizer()(expected)
    for index, (ours, theirs) in enumerate(zip(actual, expected, strict=True)):
        assert canonical(ours) == canonical(theirs), f"{scenario} {modes} run {index + 1}"


# --- beyond the golden files ----------------------------------------------------------------

failures: list[str] = []


def flaky_b(state: JoinState) -> dict[str, Any]:
    if not failures:
        failures.append("b")
        raise ConnectionError("b failed once")
    return {"log": ["b"]}


flaky_join = (
    StateGraph(JoinState)
    .add_node("a", make("a"))
    .add_node("b", flaky_b)
    .add_node("c", make("c"))
    .add_edge(START, "a")
    .add_edge(START, "b")
    .add_edge(["a", "b"], "c")
    .add_edge("c", END)
    .compile(name="shapes_flaky_join")
)


async def test_resumed_run_shows_its_checkpoint_with_what_the_step_wrote(
    client: Client, start_worker
) -> None:
    """Not recorded: LangGraph's shapes as its source makes them
    (`pregel/debug.py` map_debug_checkpoint, `pregel/_loop.py` _first, tick
    and output_writes). A run resumed after a failure first shows the state,
    then the checkpoint it resumes from again (same id), its tasks with the
    result the finished node wrote or the error of the failed one. Every task
    of the step is shown started; the finished one is not run again, its
    update is shown marked cached."""
    failures.clear()
    await start_worker([flaky_join])
    modes = ["values", "updates", "tasks", "checkpoints"]
    first = await stream_chunks(client, flaky_join, {"log": []}, modes)
    second = await stream_chunks(client, flaky_join, None, modes)
    failed_from = [c for m, c in first if m == "checkpoints"][-1]
    a_id, b_id = (t["id"] for t in failed_from["tasks"])
    resumed = {
        **failed_from,
        "tasks": [
            {"id": a_id, "name": "a", "result": {"log": ["a"]}, "interrupts": [], "state": None},
            {"id": b_id, "name": "b", "error": "b failed once", "state": None},
        ],
    }
    assert second[:7] == [
        ["values", {"log": []}],
        ["checkpoints", resumed],
        ["tasks", {"id": a_id, "name": "a", "input": {"log": []}, "triggers": ["branch:to:a"]}],
        ["tasks", {"id": b_id, "name": "b", "input": {"log": []}, "triggers": ["branch:to:b"]}],
        ["updates", {"a": {"log": ["a"]}, "__metadata__": {"cached": True}}],
        ["updates", {"b": {"log": ["b"]}}],
        [
            "tasks",
            {"id": b_id, "name": "b", "error": None, "result": {"log": ["b"]}, "interrupts": []},
        ],
    ]
    assert second[-1] == ["checkpoints", {**second[-1][1], "next": [], "tasks": []}]
    assert second[-1][1]["values"] == {"log": ["a", "b", "c"]}


class ApprovalState(TypedDict):
    log: Annotated[list[str], operator.add]


def approve(state: ApprovalState) -> dict[str, Any]:
    return {"log": [f"ok:{interrupt('approve?')}"]}


def note(state: ApprovalState) -> dict[str, Any]:
    return {"log": ["noted"]}


approval = (
    StateGraph(ApprovalState)
    .add_node("approve", approve)
    .add_node("note", note)
    .add_edge(START, "approve")
    .add_edge(START, "note")
    .compile(name="shapes_approval")
)


async def test_interrupted_step_shows_the_state_with_its_finished_nodes_updates(
    client: Client, start_worker
) -> None:
    """Not recorded: as LangGraph's `_loop.py` output_writes and
    _suppress_interrupt. The interrupt shows in updates and, with the state
    the step started from, in values; when the step stops, one more values
    chunk shows the update of the node that finished. The resumed run shows
    the state from the checkpoint again: that update is not stored yet."""
    await start_worker([approval])
    first = await stream_chunks(client, approval, {"log": []}, ["values", "updates"])
    [(interrupt_id,)] = {
        (i["id"],)
        for m, c in first
        if m == "updates" and "__interrupt__" in c
        for i in c["__interrupt__"]
    }
    shown = {"value": "approve?", "id": interrupt_id, "response_schema": None}
    assert first[0] == ["values", {"log": []}]
    assert sorted(first[1:4], key=lambda chunk: json.dumps(chunk)) == [
        ["updates", {"__interrupt__": [shown]}],
        ["updates", {"note": {"log": ["noted"]}}],
        ["values", {"__interrupt__": [shown], "log": []}],
    ]
    assert first[4:] == [["values", {"log": ["noted"]}]]
    second = await stream_chunks(client, approval, Command(resume="yes"), ["values", "updates"])
    assert second == [
        ["values", {"log": []}],
        ["updates", {"note": {"log": ["noted"]}, "__metadata__": {"cached": True}}],
        ["updates", {"approve": {"log": ["ok:yes"]}}],
        ["values", {"log": ["ok:yes", "noted"]}],
    ]


# --- GetState and GetStateHistory against chain.json's state and history --------------------


def snapshot_fields(snapshot: Any) -> dict[str, Any]:
    """The fields of a LangGraph StateSnapshot that Cairn's has with the same
    meaning. Cairn's metadata also holds run_id, target, writes and next, and
    a task's path is its namespace (LangGraph's is its trigger path): those
    are left out on both sides."""
    if isinstance(snapshot, dict):  # the golden's
        get = snapshot.get
        tasks = [
            {k: t[k] for k in ("id", "name", "result", "error", "interrupts")}
            for t in snapshot["tasks"]
        ]
        interrupts = snapshot["interrupts"]
    else:
        get = lambda key: getattr(snapshot, key)  # noqa: E731
        tasks = [
            {"id": t.id, "name": t.name, "result": t.result, "error": t.error, "interrupts": []}
            for t in snapshot.tasks
        ]
        interrupts = [{"value": i.value, "id": i.id} for i in snapshot.interrupts]
    metadata = get("metadata")
    return {
        "values": get("values"),
        "next": list(get("next")),
        "config": get("config"),
        "parent_config": get("parent_config"),
        "metadata": {k: metadata[k] for k in ("parents", "source", "step")},
        "tasks": tasks,
        "interrupts": interrupts,
    }


async def test_state_and_history_match_langgraph(client: Client, start_worker) -> None:
    await start_worker([chain])
    await stream_chunks(client, chain, {"value": 1, "log": []}, ["values"])
    state = await client.get_state(THREAD_ID)
    history = await client.get_state_history(THREAD_ID)
    recorded = golden("chain")
    ours = Normalizer()([snapshot_fields(state), [snapshot_fields(s) for s in history]])
    theirs = Normalizer()(
        [snapshot_fields(recorded["state"]), [snapshot_fields(s) for s in recorded["history"]]]
    )
    assert ours[0] == theirs[0]
    for index, (mine, recorded_one) in enumerate(zip(ours[1], theirs[1], strict=True)):
        assert mine == recorded_one, f"history[{index}]"
