"""The superstep engine's breakpoints, with no server: events in, decisions
out. A resume always gets past the breakpoint it stopped at (also after
UpdateState), and interrupt_after on the last node stops the run with nothing
next; a resume then ends it without a new checkpoint (LangGraph's rules)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from cairn_server.domain import CheckpointRecord, Json
from cairn_server.engine.checkpoints import is_unfinished
from cairn_server.engine.decisions import Decision, Dispatch, Finish, NewCheckpoint
from cairn_server.engine.graph import GraphRun, input_checkpoint, next_nodes, state_of
from cairn_server.engine.graph_model import (
    END,
    START,
    ChannelModel,
    EdgeModel,
    GraphModel,
    NodeModel,
)

NODES: dict[str, Callable[[dict[str, Json]], Json]] = {
    "add_one": lambda state: {"value": state["value"] + 1},
    "double": lambda state: {"value": state["value"] * 2},
}
_ids = itertools.count(1)


def new_id() -> str:
    return f"checkpoint-{next(_ids):04d}"


def chain(**breakpoints: frozenset[str]) -> GraphModel:
    return GraphModel(
        name="chain",
        channels={"value": ChannelModel("value")},
        nodes={"a": NodeModel("a", "add_one"), "b": NodeModel("b", "double")},
        edges=[EdgeModel((START,), "a"), EdgeModel(("a",), "b"), EdgeModel(("b",), END)],
        **breakpoints,
    )


def engine(graph: GraphModel, checkpoint: CheckpointRecord) -> GraphRun:
    return GraphRun(graph=graph, checkpoint=checkpoint, new_checkpoint_id=new_id, run_id="run")


def drive(run: GraphRun) -> tuple[Finish, list[CheckpointRecord], list[str]]:
    """Start the run and answer every dispatched node, until it finishes:
    (its end, the checkpoints it wrote, the functions it ran)."""
    written: list[CheckpointRecord] = []
    ran: list[str] = []
    todo: list[Decision] = run.start()
    while todo:
        decision = todo.pop(0)
        if isinstance(decision, NewCheckpoint):
            written.append(decision.checkpoint)
        elif isinstance(decision, Dispatch):
            ran.append(decision.name)
            run.dispatched(decision.task_id)
            result = NODES[decision.name](decision.input)  # type: ignore[arg-type]
            todo.extend(run.completed(decision.task_id, result, None, False))
        elif isinstance(decision, Finish):
            return decision, written, ran
    raise AssertionError("the run did not finish")


def first_run(graph: GraphModel) -> tuple[Finish, CheckpointRecord]:
    checkpoint = input_checkpoint(
        graph=graph,
        checkpoint_id=new_id(),
        thread_id="thread",
        parent=None,
        input={"value": 1},
        run_id="run",
        metadata={},
        now=0.0,
    )
    finish, written, _ = drive(engine(graph, checkpoint))
    return finish, written[-1]


def test_a_resume_after_update_state_runs_the_node_it_stopped_before() -> None:
    graph = chain(interrupt_before=frozenset({"b"}))
    finish, stopped = first_run(graph)
    assert finish.state == "interrupted" and next_nodes(stopped) == ["b"]
    updated = engine(graph, stopped).update({"value": 10}, "")
    assert next_nodes(updated) == ["b"]
    finish, written, ran = drive(engine(graph, updated))
    assert (finish.state, finish.output, ran) == ("succeeded", {"value": 20}, ["double"])
    assert state_of(graph, written[-1]) == {"value": 20}


def test_update_state_as_before_the_first_node_is_as_start() -> None:
    graph = chain(interrupt_before=frozenset({"a", "b"}))
    _, stopped = first_run(graph)
    assert next_nodes(stopped) == ["a"]
    updated = engine(graph, stopped).update({"value": 5}, "")
    assert next_nodes(updated) == ["a"] and updated.metadata["writes"] == {START: {"value": 5}}
    finish, _, ran = drive(engine(graph, updated))
    assert finish.state == "interrupted" and ran == ["add_one"]


def test_interrupt_after_the_last_node_stops_then_a_resume_ends_the_run() -> None:
    graph = chain(interrupt_after=frozenset({"b"}))
    finish, stopped = first_run(graph)
    assert (finish.state, finish.interrupts) == ("interrupted", ())
    assert next_nodes(stopped) == [] and is_unfinished(stopped)
    assert state_of(graph, stopped) == {"value": 4}
    finish, written, ran = drive(engine(graph, stopped))
    assert (finish.state, finish.output, written, ran) == ("succeeded", {"value": 4}, [], [])


def test_update_state_over_an_unfinished_end_keeps_it_resumable() -> None:
    graph = chain(interrupt_after=frozenset({"b"}))
    _, stopped = first_run(graph)
    updated = engine(graph, stopped).update({"value": 100}, "")
    assert next_nodes(updated) == [] and is_unfinished(updated)
    finish, _, _ = drive(engine(graph, updated))
    assert (finish.state, finish.output) == ("succeeded", {"value": 100})


def test_a_finished_run_stays_finished_after_update_state_to_the_end() -> None:
    graph = chain()
    finish, done = first_run(graph)
    assert finish.state == "succeeded" and not is_unfinished(done)
    assert not is_unfinished(engine(graph, done).update({"value": 7}, "b"))
