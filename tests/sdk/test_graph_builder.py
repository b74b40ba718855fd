"""The Graph API without a server: the GraphSpec a StateGraph compiles to, the
errors LangGraph users expect from the builder, the reducers' local meaning,
how node and router results travel, and how a worker serves a graph."""

from __future__ import annotations

import asyncio
import operator
from collections.abc import AsyncIterator
from typing import Annotated, Any, NotRequired, TypedDict

import pytest
from google.protobuf import json_format

from cairn import (
    END,
    START,
    Command,
    CompiledStateGraph,
    RetryPolicy,
    Send,
    StateGraph,
    Worker,
    add_messages,
    append,
    get_stream_writer,
    interrupt,
    merge,
    task,
)
from cairn._graph import encode_node_result, encode_router_result
from cairn._values import to_json, to_value
from cairn.v1 import worker_service_pb2 as pb


class State(TypedDict):
    topic: str
    notes: Annotated[list[str], operator.add]
    messages: Annotated[list[dict[str, Any]], add_messages]
    events: Annotated[list[Any], append]
    scores: Annotated[dict[str, int], merge]
    total: Annotated[int, "add"]
    log: Annotated[list[str], "append"]
    label: Annotated[str, "last_value"]
    draft: NotRequired[Annotated[str, "add"]]
    maybe: Annotated[list[str] | None, operator.add]


class Plain(TypedDict):
    topic: str
    answer: str


def plan(state: dict[str, Any]) -> dict[str, Any]:
    return {"notes": ["plan"]}


def research(state: dict[str, Any]) -> dict[str, Any]:
    return {"notes": ["research"]}


def write(state: dict[str, Any]) -> dict[str, Any]:
    return {"notes": ["write"]}


def review(state: dict[str, Any]) -> None:
    return None


def route(state: dict[str, Any]) -> str:
    return "write"


def route_again(state: dict[str, Any]) -> str:
    return END


def small_graph() -> CompiledStateGraph:
    builder = StateGraph(State)
    builder.add_node("plan", plan, retry_policy=RetryPolicy(max_attempts=5))
    builder.add_node(research)
    builder.add_node(write)
    builder.add_node(review)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "research")
    builder.add_edge(["plan", "research"], "write")
    builder.add_conditional_edges("write", route, {"again": "write", "done": END})
    builder.add_conditional_edges("write", route_again, ["review", END])
    builder.add_conditional_edges(START, route)
    builder.add_edge("review", END)
    return builder.compile(name="essay", interrupt_before=["review"], interrupt_after=["plan"])


def as_dict(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


# --- the GraphSpec ------------------------------------------------------------------------


def test_a_small_graph_compiles_to_its_spec() -> None:
    graph = small_graph()

    assert graph.name == "essay"
    assert graph.nodes == {"plan": plan, "research": research, "write": write, "review": review}
    assert as_dict(graph._spec) == {
        "name": "essay",
        "channels": [
            {"name": "topic", "reducer": "REDUCER_LAST_VALUE"},
            {"name": "notes", "reducer": "REDUCER_ADD", "default": []},
            {"name": "messages", "reducer": "REDUCER_ADD_MESSAGES", "default": []},
            {"name": "events", "reducer": "REDUCER_APPEND", "default": []},
            {"name": "scores", "reducer": "REDUCER_MERGE", "default": {}},
            {"name": "total", "reducer": "REDUCER_ADD", "default": 0},
            {"name": "log", "reducer": "REDUCER_APPEND", "default": []},
            {"name": "label", "reducer": "REDUCER_LAST_VALUE"},
            {"name": "draft", "reducer": "REDUCER_ADD", "default": ""},
            # No empty value for a union, as in LangGraph: absent until written.
            {"name": "maybe", "reducer": "REDUCER_ADD"},
        ],
        "nodes": [
            {
                "name": "plan",
                "function": "essay:plan",
                "retry_policy": as_dict(RetryPolicy(max_attempts=5)._to_proto()),
            },
            {"name": "research", "function": "essay:research"},
            {"name": "write", "function": "essay:write"},
            {"name": "review", "function": "essay:review"},
        ],
        "edges": [
            {"sources": ["__start__"], "target": "plan"},
            {"sources": ["plan"], "target": "research"},
            {"sources": ["plan", "research"], "target": "write"},
            {"sources": ["review"], "target": "__end__"},
        ],
        "conditional_edges": [
            {
                "source": "write",
                "router": "essay:write:route0",
                "path_map": {"again": "write", "done": "__end__"},
            },
            {
                "source": "write",
                "router": "essay:write:route1",
                "path_map": {"review": "review", "__end__": "__end__"},
            },
            {"source": "__start__", "router": "essay:__start__:route0"},
        ],
        "interrupt_before": ["review"],
        "interrupt_after": ["plan"],
    }


def test_nodes_and_routers_are_served_as_tasks_of_the_graph() -> None:
    graph = small_graph()

    assert {name: (t.fn, t.router) for name, t in graph.tasks.items()} == {
        "essay:plan": (plan, False),
        "essay:research": (research, False),
        "essay:write": (write, False),
        "essay:review": (review, False),
        "essay:write:route0": (route, True),
        "essay:write:route1": (route_again, True),
        "essay:__start__:route0": (route, True),
    }
    assert graph.tasks["essay:plan"].retry_policy == RetryPolicy(max_attempts=5)


def test_a_dict_schema_repeated_edges_and_the_default_graph_name() -> None:
    builder = StateGraph(
        {
            "question": str,
            "answers": Annotated[list, operator.add],
            # As in LangGraph, the last piece of metadata is the reducer.
            "votes": Annotated[int, {"doc": "other metadata"}, "add"],
            "note": Annotated[str, {"doc": "not a reducer"}],
        }
    )
    builder.add_node("answer", lambda state: {"answers": ["42"]})
    builder.set_entry_point("answer")
    builder.set_finish_point("answer")
    builder.set_finish_point("answer")
    graph = builder.compile()

    assert graph.name == "LangGraph"
    assert as_dict(graph._spec)["channels"] == [
        {"name": "question", "reducer": "REDUCER_LAST_VALUE"},
        {"name": "answers", "reducer": "REDUCER_ADD", "default": []},
        {"name": "votes", "reducer": "REDUCER_ADD", "default": 0},
        {"name": "note", "reducer": "REDUCER_LAST_VALUE"},
    ]
    assert as_dict(graph._spec)["edges"] == [
        {"sources": ["__start__"], "target": "answer"},
        {"sources": ["answer"], "target": "__end__"},
    ]


def test_add_sequence_and_star_breakpoints() -> None:
    builder = StateGraph(Plain)
    builder.add_sequence([plan, ("check", review), write])
    builder.add_edge(START, "plan")
    graph = builder.compile(name="seq", interrupt_before="*")

    assert [n.name for n in graph._spec.nodes] == ["plan", "check", "write"]
    assert [(list(e.sources), e.target) for e in graph._spec.edges] == [
        (["plan"], "check"),
        (["check"], "write"),
        (["__start__"], "plan"),
    ]
    assert list(graph._spec.interrupt_before) == ["plan", "check", "write"]


def test_input_and_output_schemas_name_the_input_and_output_channels() -> None:
    class Question(TypedDict):
        topic: str

    class Answer(TypedDict):
        answer: str
        sources: Annotated[list[str], operator.add]

    builder = StateGraph(Plain, input_schema=Question, output_schema=Answer)
    builder.add_node(plan).set_entry_point("plan")
    spec = builder.compile(name="qa")._spec

    assert list(spec.input_channels) == ["topic"]
    assert list(spec.output_channels) == ["answer", "sources"]
    assert [(c.name, c.reducer) for c in spec.channels] == [
        ("topic", 1),
        ("answer", 1),
        ("sources", 2),
    ]


def test_a_conditional_entry_point_is_an_entry() -> None:
    builder = StateGraph(Plain)
    builder.add_node(plan)
    builder.set_conditional_entry_point(route, {"write": "plan"})
    spec = builder.compile(name="g")._spec

    assert [(e.source, e.router, dict(e.path_map)) for e in spec.conditional_edges] == [
        ("__start__", "g:__start__:route0", {"write": "plan"})
    ]


# --- errors ---------------------------------------------------------------------------


def custom_reducer(a: list[Any], b: list[Any]) -> list[Any]:
    return a + b


class WithCustomReducer(TypedDict):
    items: Annotated[list[Any], custom_reducer]


class WithUnknownName(TypedDict):
    items: Annotated[list[Any], "concat"]


def test_a_reducer_the_service_cannot_apply_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="'custom_reducer' cannot be used"):
        StateGraph(WithCustomReducer)
    with pytest.raises(TypeError, match="cannot be used"):
        StateGraph({"items": Annotated[list, lambda a, b: a + b]})
    with pytest.raises(TypeError, match="unknown reducer 'concat'"):
        StateGraph(WithUnknownName)


def test_a_state_schema_must_be_a_typeddict_or_a_dict() -> None:
    class NotATypedDict:
        topic: str

    with pytest.raises(TypeError, match="TypedDict or a dict"):
        StateGraph(NotATypedDict)
    with pytest.raises(TypeError, match="cannot be a state key"):
        StateGraph({"__cairn__": str})


@pytest.mark.parametrize("name", [START, END])
def test_reserved_node_names(name: str) -> None:
    with pytest.raises(ValueError, match=f"Node `{name}` is reserved"):
        StateGraph(Plain).add_node(name, plan)


@pytest.mark.parametrize("name", ["a:b", "a|b"])
def test_reserved_characters_in_node_names(name: str) -> None:
    with pytest.raises(ValueError, match="reserved character"):
        StateGraph(Plain).add_node(name, plan)


def test_bad_nodes() -> None:
    builder = StateGraph(Plain).add_node(plan)
    with pytest.raises(ValueError, match="Node `plan` already present"):
        builder.add_node("plan", research)
    with pytest.raises(TypeError, match="only required argument"):
        builder.add_node("two", lambda state, config: None)
    with pytest.raises(TypeError, match="takes no retry_policy"):
        builder.add_node("sub", small_graph(), retry_policy=RetryPolicy())
    with pytest.raises(TypeError, match="needs the node's function"):
        builder.add_node("nothing")
    with pytest.raises(ValueError, match="at least one node"):
        builder.add_sequence([])


def test_bad_edges() -> None:
    builder = StateGraph(Plain).add_node(plan)
    with pytest.raises(ValueError, match="END cannot be a start node"):
        builder.add_edge(END, "plan")
    with pytest.raises(ValueError, match="START cannot be an end node"):
        builder.add_edge("plan", START)
    with pytest.raises(ValueError, match="Need to add_node `ghost` first"):
        builder.add_edge(["plan", "ghost"], END)
    with pytest.raises(ValueError, match="Need to add_node `ghost` first"):
        builder.add_edge(["plan"], "ghost")
    with pytest.raises(TypeError, match="must map strings to node names"):
        builder.add_conditional_edges("plan", route, {True: "plan"})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="only required argument"):
        builder.add_conditional_edges("plan", lambda: "plan")


def test_a_graph_needs_an_entry_edge() -> None:
    builder = StateGraph(Plain).add_node(plan).add_edge("plan", END)
    with pytest.raises(ValueError, match="Graph must have an entrypoint"):
        builder.compile()


def test_edges_must_name_known_nodes() -> None:
    starting = StateGraph(Plain).add_node(plan).set_entry_point("plan").add_edge("ghost", "plan")
    with pytest.raises(ValueError, match="Found edge starting at unknown node 'ghost'"):
        starting.compile()

    ending = StateGraph(Plain).add_node(plan).set_entry_point("plan").add_edge("plan", "ghost")
    with pytest.raises(ValueError, match="Found edge ending at unknown node `ghost`"):
        ending.compile()

    routed = StateGraph(Plain).add_node(plan).set_entry_point("plan")
    routed.add_conditional_edges("plan", route, {"a": "ghost"})
    with pytest.raises(ValueError, match="At 'plan' node, 'route' branch found unknown target"):
        routed.compile()

    routing_from = StateGraph(Plain).add_node(plan).set_entry_point("plan")
    routing_from.add_conditional_edges("ghost", route)
    with pytest.raises(ValueError, match="Found edge starting at unknown node 'ghost'"):
        routing_from.compile()


def test_bad_breakpoints_and_graph_names() -> None:
    builder = StateGraph(Plain).add_node(plan).set_entry_point("plan")
    with pytest.raises(ValueError, match="Interrupt node `ghost` not found"):
        builder.compile(interrupt_before=["ghost"])
    with pytest.raises(ValueError, match="Interrupt node `ghost` not found"):
        builder.compile(interrupt_after=["plan", "ghost"])
    with pytest.raises(ValueError, match="without ':'"):
        builder.compile(name="a:b")
    with pytest.raises(ValueError, match="non-empty"):
        builder.compile(name="")


# --- reducers, locally ------------------------------------------------------------------


def test_add_messages_replaces_by_id_appends_and_removes() -> None:
    current = [{"id": "1", "content": "hi"}, {"id": "2", "content": "hello"}]
    update = [
        {"id": "2", "content": "hello again"},
        {"id": "3", "content": "new"},
        {"id": "1", "type": "remove"},
    ]
    assert add_messages(current, update) == [
        {"id": "2", "content": "hello again"},
        {"id": "3", "content": "new"},
    ]
    assert current == [{"id": "1", "content": "hi"}, {"id": "2", "content": "hello"}]


def test_add_messages_takes_one_message_and_assigns_missing_ids() -> None:
    merged = add_messages([{"id": "1", "content": "hi"}], {"content": "no id"})
    assert merged[0] == {"id": "1", "content": "hi"}
    assert merged[1]["content"] == "no id"
    assert isinstance(merged[1]["id"], str) and merged[1]["id"]

    again = add_messages(merged, {**merged[1], "content": "edited"})
    assert [m["content"] for m in again] == ["hi", "edited"]


def test_add_messages_remove_errors_and_remove_all() -> None:
    with pytest.raises(ValueError, match="doesn't exist"):
        add_messages([{"id": "1"}], [{"id": "9", "type": "remove"}])
    assert add_messages(
        [{"id": "1"}, {"id": "2"}],
        [{"id": "0"}, {"id": "__remove_all__", "type": "remove"}, {"id": "3"}],
    ) == [{"id": "3"}]
    with pytest.raises(TypeError, match="JSON objects"):
        add_messages([], ["just a string"])


def test_append_and_merge() -> None:
    assert append([1], [2, 3]) == [1, 2, 3]
    assert append([1], "x") == [1, "x"]
    assert append([1], {"a": 1}) == [1, {"a": 1}]
    assert append(None, [1]) == [1]
    assert merge({"a": 1, "b": 2}, {"b": 3, "c": 4}) == {"a": 1, "b": 3, "c": 4}
    assert merge(None, {"a": 1}) == {"a": 1}
    with pytest.raises(TypeError):
        merge({}, [1])


# --- results ------------------------------------------------------------------------------


def test_node_results() -> None:
    assert encode_node_result({"notes": ["x"]}) == {"notes": ["x"]}
    assert encode_node_result(None) is None
    assert encode_node_result(Command(update={"label": "bug"}, goto="fix")) == {
        "__cairn__": "command",
        "update": {"label": "bug"},
        "goto": ["fix"],
    }
    assert encode_node_result(Command(goto=[Send("summarize", {"doc": 1}), "review", END])) == {
        "__cairn__": "command",
        "update": {},
        "goto": [
            {"__cairn__": "send", "node": "summarize", "arg": {"doc": 1}},
            "review",
            "__end__",
        ],
    }
    assert encode_node_result(Command(update={"n": 1}, goto=Send("x", 2))) == {
        "__cairn__": "command",
        "update": {"n": 1},
        "goto": [{"__cairn__": "send", "node": "x", "arg": 2}],
    }


def test_bad_node_results() -> None:
    with pytest.raises(TypeError, match="expected a dict update, None or a Command"):
        encode_node_result(["not", "a", "dict"], "g:n")
    with pytest.raises(ValueError, match=r"Command\(resume=\.\.\.\)"):
        encode_node_result(Command(resume="yes"))
    with pytest.raises(TypeError, match="expected a dict"):
        encode_node_result(Command(update=[("a", 1)]))
    with pytest.raises(TypeError, match="expected a node name"):
        encode_node_result(Command(goto=[1]))  # type: ignore[list-item]
    with pytest.raises(TypeError, match="reserved key"):
        encode_node_result({"__cairn__": "command"})


def test_router_results() -> None:
    assert encode_router_result("write") == ["write"]
    assert encode_router_result(END) == ["__end__"]
    assert encode_router_result(Send("n", {"i": 1})) == [
        {"__cairn__": "send", "node": "n", "arg": {"i": 1}}
    ]
    assert encode_router_result(["a", Send("b", 2), END]) == [
        "a",
        {"__cairn__": "send", "node": "b", "arg": 2},
        "__end__",
    ]
    assert encode_router_result([]) == []
    with pytest.raises(TypeError, match="expected a node name"):
        encode_router_result(None, "g:s:route0")
    with pytest.raises(TypeError, match="expected a node name"):
        encode_router_result(True)
    with pytest.raises(TypeError, match="expected a node name"):
        encode_router_result(START)


def test_a_client_resume_command_is_unchanged_and_node_commands_are_refused() -> None:
    assert Command(resume="yes")._to_proto().resume.string_value == "yes"
    with pytest.raises(ValueError, match="returned by graph nodes"):
        Command(update={"a": 1})._to_proto()
    with pytest.raises(ValueError, match="returned by graph nodes"):
        Command(goto="x")._to_proto()


# --- serving a graph ----------------------------------------------------------------------


def test_the_hello_registers_the_graph_and_its_nodes_and_routers_as_tasks() -> None:
    graph = small_graph()
    worker = Worker(functions=[graph])
    try:
        registrations = worker._hello().hello.registrations
    finally:
        worker._task_threads.shutdown()
        worker._entrypoint_threads.shutdown()

    kinds = {r.name: r.kind for r in registrations}
    assert kinds == {
        "essay": pb.TASK_KIND_GRAPH,
        "essay:plan": pb.TASK_KIND_TASK,
        "essay:research": pb.TASK_KIND_TASK,
        "essay:write": pb.TASK_KIND_TASK,
        "essay:review": pb.TASK_KIND_TASK,
        "essay:write:route0": pb.TASK_KIND_TASK,
        "essay:write:route1": pb.TASK_KIND_TASK,
        "essay:__start__:route0": pb.TASK_KIND_TASK,
    }
    by_name = {r.name: r for r in registrations}
    assert by_name["essay"].graph == graph._spec
    assert by_name["essay:plan"].retry_policy == RetryPolicy(max_attempts=5)._to_proto()
    assert not by_name["essay:research"].HasField("retry_policy")
    assert worker.register(graph) is graph


@task
def shout(text: str) -> str:
    return text.upper()


def calls_a_task(state: dict[str, Any]) -> dict[str, Any]:
    return {"answer": shout(state["topic"]).result()}


def asks(state: dict[str, Any]) -> dict[str, Any]:
    get_stream_writer()({"asking": state["topic"]})
    return {"answer": interrupt({"question": state["topic"]})}


async def fans_out(state: dict[str, Any]) -> list[Send]:
    return [Send("write", {"topic": t}) for t in state["topic"].split()]


def goes_to_review(state: dict[str, Any]) -> Command:
    return Command(update={"answer": "draft"}, goto="review")


def returns_a_string(state: dict[str, Any]) -> str:
    return "oops"


def serving_graph() -> CompiledStateGraph:
    builder = StateGraph(Plain)
    for node in (calls_a_task, asks, goes_to_review, returns_a_string, review, write):
        builder.add_node(node)
    builder.add_edge(START, "calls_a_task")
    builder.add_conditional_edges("calls_a_task", fans_out)
    return builder.compile(name="g")


@pytest.fixture
async def worker() -> AsyncIterator[Worker]:
    instance = Worker(functions=[serving_graph(), shout])
    yield instance
    # As when its connection closes: release bodies still waiting on a task.
    connection = instance._connections[0]
    pending = [running for running, _ in connection.running.values()]
    for running in pending:
        running.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    instance._task_threads.shutdown()
    instance._entrypoint_threads.shutdown()


OUTCOMES = ("completed", "failed", "interrupted", "suspended")


async def execute(
    worker: Worker, name: str, input: Any, *, until: str = "", **fields: Any
) -> list[pb.ConnectRequest]:
    """Run one assignment as the service would; the worker's messages up to
    its outcome (or up to the first `until` message, then withdraw it)."""
    task_id = f"task-{name}"
    assignment = pb.TaskAssignment(
        task_id=task_id, name=name, kind=pb.TASK_KIND_TASK, input=to_value(input), **fields
    )
    outbox: asyncio.Queue[pb.ConnectRequest | None] = asyncio.Queue()
    connection = worker._connections[0]
    connection._start(assignment, outbox)
    messages = []
    while True:
        message = await asyncio.wait_for(outbox.get(), 5)
        assert message is not None
        messages.append(message)
        kind = message.WhichOneof("kind")
        if kind == until:
            cancel = pb.ConnectResponse(cancel=pb.CancelTask(task_id=task_id))
            connection._handle(cancel, outbox)
            return messages
        if kind in OUTCOMES:
            return messages


async def test_a_node_calls_tasks_through_the_journal(worker: Worker) -> None:
    journal = [pb.JournalEntry(index=0, name="shout", task_id="c", result=to_value("CATS"))]
    [message] = await execute(worker, "g:calls_a_task", {"topic": "cats"}, journal=journal)
    assert to_json(message.completed.result) == {"answer": "CATS"}

    [scheduled] = await execute(worker, "g:calls_a_task", {"topic": "dogs"}, until="schedule")
    assert scheduled.schedule.name == "shout"
    assert to_json(scheduled.schedule.input) == "dogs"


async def test_a_node_streams_interrupts_and_resumes(worker: Worker) -> None:
    chunk, interrupted = await execute(worker, "g:asks", {"topic": "cats"})
    assert to_json(chunk.chunk.data) == {"asking": "cats"}
    assert interrupted.interrupted.index == 0
    assert to_json(interrupted.interrupted.value) == {"question": "cats"}

    _, completed = await execute(worker, "g:asks", {"topic": "cats"}, resume=[to_value("yes")])
    assert to_json(completed.completed.result) == {"answer": "yes"}


async def test_node_and_router_results_reach_the_service_encoded(worker: Worker) -> None:
    [command] = await execute(worker, "g:goes_to_review", {"topic": "x"})
    assert to_json(command.completed.result) == {
        "__cairn__": "command",
        "update": {"answer": "draft"},
        "goto": ["review"],
    }

    [nothing] = await execute(worker, "g:review", {"topic": "x"})
    assert nothing.completed.result.WhichOneof("kind") == "null_value"

    [routed] = await execute(worker, "g:calls_a_task:route0", {"topic": "a b"})
    assert to_json(routed.completed.result) == [
        {"__cairn__": "send", "node": "write", "arg": {"topic": "a"}},
        {"__cairn__": "send", "node": "write", "arg": {"topic": "b"}},
    ]

    [sent] = await execute(worker, "g:write", {"topic": "a"})
    assert to_json(sent.completed.result) == {"notes": ["write"]}


async def test_a_node_returning_a_non_update_fails_without_retry(worker: Worker) -> None:
    [failed] = await execute(worker, "g:returns_a_string", {"topic": "x"})
    assert failed.failed.error.type == "TypeError"
    assert "g:returns_a_string returned str" in failed.failed.error.message
    assert not failed.failed.error.retryable
