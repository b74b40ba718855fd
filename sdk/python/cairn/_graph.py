"""LangGraph's Graph API: a `StateGraph` compiled into a graph that the Cairn
service runs.

    import operator
    from typing import Annotated, TypedDict

    from cairn import END, START, StateGraph

    class State(TypedDict):
        topic: str
        notes: Annotated[list[str], operator.add]

    def research(state: State) -> dict:
        return {"notes": [f"facts about {state['topic']}"]}

    def write(state: State) -> dict:
        return {"notes": ["a draft"]}

    builder = StateGraph(State)
    builder.add_node(research)
    builder.add_node(write)
    builder.add_edge(START, "research")
    builder.add_edge("research", "write")
    builder.add_edge("write", END)
    graph = builder.compile(name="essay")

Serve it with `Worker(functions=[graph])` and run it with
`Client.invoke("essay", {"topic": "cats"}, thread_id="1")`. The service runs
the supersteps and applies the reducers, so a state key can only use a named
reducer. Every node and router runs on a worker as a task: node N of graph G
is the task `"G:N"`, the i-th conditional edge leaving S is `"G:S:route{i}"`.

Subgraphs: `add_node("name", compiled_subgraph)` runs another compiled graph
as a node (it reads the state's shared keys and its output updates them), and
`subgraph.invoke(input)` inside a node calls one. Both run in the service
with their own checkpoints, so an interrupt inside a subgraph pauses the run
and a resume continues the subgraph where it stopped. Give every graph its own
`compile(name=...)`, and serve the graphs a node calls with the same worker.
"""

from __future__ import annotations

import collections.abc
import inspect
import operator
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import (
    Annotated,
    Any,
    Literal,
    NotRequired,
    Required,
    Self,
    get_args,
    get_origin,
    get_type_hints,
)

from cairn._context import current
from cairn._functional import NODE_INJECTED
from cairn._types import Command, RetryPolicy, Send
from cairn._values import to_value
from cairn.v1 import graph_pb2

START = "__start__"
"""The graph's entry: `add_edge(START, "first")`."""
END = "__end__"
"""Where a path stops: `add_edge("last", END)`, or a router returning END."""

# Marks the node results and router items that are not plain state updates.
_MARK = "__cairn__"
_RESERVED_CHARACTERS = (":", "|")
_REMOVE_ALL_MESSAGES = "__remove_all__"


# --- reducers ---------------------------------------------------------------------------
#
# The service applies reducers, so these functions are markers for
# `Annotated[...]`; they also compute what the service does, for local use
# and tests.


def add_messages(current: Any, update: Any) -> list[Any]:
    """LangGraph's `add_messages` on JSON messages (objects with an `"id"`).

    A message whose id is already present replaces it, a message with
    `"type": "remove"` deletes the message with its id (an error when there is
    none), others are appended. Messages without an id get a new one; a remove
    with id `"__remove_all__"` drops every message before it.

        class State(TypedDict):
            messages: Annotated[list, add_messages]

        add_messages([{"id": "1", "content": "hi"}], {"id": "1", "content": "hello"})
        # [{"id": "1", "content": "hello"}]
    """
    left = _with_ids(current)
    right = _with_ids(update)
    for last in range(len(right) - 1, -1, -1):
        if _is_remove(right[last]) and right[last]["id"] == _REMOVE_ALL_MESSAGES:
            return right[last + 1 :]
    merged = list(left)
    where = {message["id"]: i for i, message in enumerate(merged)}
    removed: set[Any] = set()
    for message in right:
        position = where.get(message["id"])
        if position is None:
            if _is_remove(message):
                raise ValueError(
                    f"Attempting to delete a message with an ID that doesn't exist "
                    f"({message['id']!r})"
                )
            where[message["id"]] = len(merged)
            merged.append(message)
        elif _is_remove(message):
            removed.add(message["id"])
        else:
            removed.discard(message["id"])
            merged[position] = message
    return [message for message in merged if message["id"] not in removed]


def _with_ids(messages: Any) -> list[dict[str, Any]]:
    if messages is None:
        return []
    items = messages if isinstance(messages, list | tuple) else [messages]
    out: list[dict[str, Any]] = []
    for message in items:
        if not isinstance(message, dict):
            raise TypeError(
                f"add_messages works on messages as JSON objects, not {type(message).__name__}"
            )
        if message.get("id") is None:
            message = {**message, "id": str(uuid.uuid4())}
        out.append(message)
    return out


def _is_remove(message: dict[str, Any]) -> bool:
    return message.get("type") == "remove"


def append(current: Any, update: Any) -> list[Any]:
    """A list that grows: a list write is appended item by item, any other
    write as one item.

        class State(TypedDict):
            events: Annotated[list, append]

        append([1], [2, 3]) == [1, 2, 3]; append([1], "x") == [1, "x"]
    """
    items = list(current) if current is not None else []
    if isinstance(update, list | tuple):
        return items + list(update)
    return [*items, update]


def merge(current: Any, update: Any) -> dict[str, Any]:
    """Objects merged key by key, the write winning (`dict.update`). The
    current value may be None (nothing written yet).

        class State(TypedDict):
            scores: Annotated[dict[str, int], merge]

        merge({"a": 1, "b": 2}, {"b": 3}) == {"a": 1, "b": 3}
    """
    if not isinstance(update, dict):
        raise TypeError(f"merge takes a JSON object as the write, not {type(update).__name__}")
    return {**(current or {}), **update}


_REDUCER_NAMES: dict[str, graph_pb2.Reducer.ValueType] = {
    "last_value": graph_pb2.REDUCER_LAST_VALUE,
    "add": graph_pb2.REDUCER_ADD,
    "append": graph_pb2.REDUCER_APPEND,
    "merge": graph_pb2.REDUCER_MERGE,
    "add_messages": graph_pb2.REDUCER_ADD_MESSAGES,
}
_REDUCER_FUNCTIONS: dict[Callable[..., Any], graph_pb2.Reducer.ValueType] = {
    operator.add: graph_pb2.REDUCER_ADD,
    append: graph_pb2.REDUCER_APPEND,
    merge: graph_pb2.REDUCER_MERGE,
    add_messages: graph_pb2.REDUCER_ADD_MESSAGES,
}
_EMPTY: dict[Any, Any] = {
    list: [],
    tuple: [],
    collections.abc.Sequence: [],
    collections.abc.MutableSequence: [],
    dict: {},
    collections.abc.Mapping: {},
    collections.abc.MutableMapping: {},
    str: "",
    int: 0,
    float: 0.0,
    bool: False,
}


@dataclass(frozen=True, slots=True)
class _Channel:
    reducer: graph_pb2.Reducer.ValueType
    # As in LangGraph, a reducer channel starts as its type's empty value
    # (`Annotated[list, operator.add]` starts as []); None means unset.
    default: tuple[Any] | None = None


def _is_typeddict(schema: object) -> bool:
    # typing_extensions has its own TypedDict on 3.11, which
    # typing.is_typeddict does not recognize.
    return isinstance(schema, type) and hasattr(schema, "__required_keys__")


def _channels(schema: Any) -> dict[str, _Channel]:
    if isinstance(schema, Mapping):
        hints = dict(schema)
    elif _is_typeddict(schema):
        hints = get_type_hints(schema, include_extras=True)
    else:
        raise TypeError(
            f"the state schema must be a TypedDict or a dict of key -> type, not {schema!r}: "
            "nodes receive and return plain dicts"
        )
    channels = {}
    for key, hint in hints.items():
        if not isinstance(key, str) or key == _MARK:
            raise TypeError(f"{key!r} cannot be a state key")
        channels[key] = _channel(key, hint)
    return channels


def _channel(key: str, hint: Any) -> _Channel:
    while get_origin(hint) in (Required, NotRequired):
        hint = get_args(hint)[0]
    if get_origin(hint) is not Annotated:
        return _Channel(graph_pb2.REDUCER_LAST_VALUE)
    base, *metadata = get_args(hint)
    # As in LangGraph, the last piece of metadata is the reducer.
    marker = metadata[-1]
    if isinstance(marker, str):
        reducer = _REDUCER_NAMES.get(marker)
        if reducer is None:
            raise TypeError(
                f"state key {key!r}: unknown reducer {marker!r}; "
                f"the named reducers are {', '.join(map(repr, _REDUCER_NAMES))}"
            )
    elif callable(marker):
        reducer = _reducer_of(marker)
        if reducer is None:
            raise TypeError(
                f"state key {key!r}: reducer {getattr(marker, '__name__', marker)!r} cannot be "
                "used: the Cairn service applies reducers, so only named ones work: "
                "operator.add, cairn.add_messages, cairn.append, cairn.merge, or the names "
                f"{', '.join(map(repr, _REDUCER_NAMES))}"
            )
    else:
        return _Channel(graph_pb2.REDUCER_LAST_VALUE)
    if reducer == graph_pb2.REDUCER_LAST_VALUE:
        return _Channel(reducer)
    return _Channel(reducer, _empty(base))


def _reducer_of(marker: Callable[..., Any]) -> graph_pb2.Reducer.ValueType | None:
    try:
        return _REDUCER_FUNCTIONS.get(marker)
    except TypeError:  # an unhashable callable
        return None


def _empty(base: Any) -> tuple[Any] | None:
    origin = get_origin(base) or base
    if _is_typeddict(origin):
        return ({},)
    try:
        empty = _EMPTY.get(origin, _MARK)
    except TypeError:
        return None
    return None if empty is _MARK else (empty,)


# --- the builder ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Node:
    name: str
    fn: Callable[..., Any] | CompiledStateGraph
    retry_policy: RetryPolicy | None


@dataclass(frozen=True, slots=True)
class _Branch:
    source: str
    router: Callable[..., Any]
    path_map: dict[str, str] | None


def _check_takes_state(fn: Callable[..., Any], what: str) -> None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature
        return
    # `store` and `writer` are given by the worker (as in LangGraph), even
    # when declared keyword-only without a default.
    given = {name: None for name in NODE_INJECTED if name in signature.parameters}
    try:
        signature.bind(None, **given)
    except TypeError:
        raise TypeError(
            f"{what} must take the state as its only required argument; {fn!r} takes {signature}"
        ) from None


class StateGraph:
    """A graph whose nodes read a shared state and return updates to it, as
    LangGraph's `StateGraph`.

    The state is a TypedDict (or a dict of key -> type). A key annotated
    with a reducer combines writes: `Annotated[list, operator.add]`,
    `Annotated[list, add_messages]`, `Annotated[list, append]`,
    `Annotated[dict, merge]`, or a name such as `Annotated[list, "append"]`;
    other keys keep the last value written.

        builder = StateGraph(State)
        builder.add_node("plan", plan)
        builder.add_node("act", act, retry_policy=RetryPolicy(max_attempts=5))
        builder.add_edge(START, "plan")
        builder.add_conditional_edges("plan", route, ["act", END])
        builder.add_edge("act", "plan")
        graph = builder.compile(name="agent")

    `input_schema` and `output_schema` limit the keys a run's input may
    write and the keys of its output.
    """

    def __init__(
        self,
        state_schema: Any,
        *,
        input_schema: Any = None,
        output_schema: Any = None,
    ) -> None:
        self.channels = _channels(state_schema)
        self.input_channels: list[str] = []
        self.output_channels: list[str] = []
        for schema, names in (
            (input_schema, self.input_channels),
            (output_schema, self.output_channels),
        ):
            if schema is None:
                continue
            for key, channel in _channels(schema).items():
                self.channels.setdefault(key, channel)
                names.append(key)
        self.nodes: dict[str, _Node] = {}
        self.edges: list[tuple[tuple[str, ...], str]] = []
        self.branches: list[_Branch] = []

    def add_node(
        self,
        node: str | Callable[..., Any],
        action: Callable[..., Any] | CompiledStateGraph | None = None,
        *,
        retry_policy: RetryPolicy | None = None,
    ) -> Self:
        """Add a node: `add_node("name", fn)`, or `add_node(fn)` named after
        the function. It is called with the state (or a Send's argument) and
        returns a dict update, None, or a `Command`. A compiled graph as the
        action is a subgraph node."""
        if isinstance(node, str):
            if action is None:
                raise TypeError(f"add_node({node!r}) needs the node's function")
            name = node
        else:
            if action is not None:
                raise TypeError("add_node takes a name and a function, or just a function")
            action = node
            name = _name_of(node)
        if isinstance(action, CompiledStateGraph):
            if retry_policy is not None:
                raise TypeError(
                    f"subgraph node {name!r} takes no retry_policy: its nodes retry by their own"
                )
        elif not callable(action):
            raise TypeError(f"node {name!r} must be callable, not {action!r}")
        if name in (START, END):
            raise ValueError(f"Node `{name}` is reserved.")
        for character in _RESERVED_CHARACTERS:
            if character in name:
                raise ValueError(
                    f"'{character}' is a reserved character and is not allowed in the node names."
                )
        if name in self.nodes:
            raise ValueError(f"Node `{name}` already present.")
        if not isinstance(action, CompiledStateGraph):
            _check_takes_state(action, f"node {name!r}")
        self.nodes[name] = _Node(name, action, retry_policy)
        return self

    def add_edge(self, start_key: str | Sequence[str], end_key: str) -> Self:
        """Run `end_key` after `start_key`; with a list of start nodes, after
        all of them have run (a join)."""
        if end_key == START:
            raise ValueError("START cannot be an end node")
        sources = (start_key,) if isinstance(start_key, str) else tuple(start_key)
        if END in sources:
            raise ValueError("END cannot be a start node")
        if not sources:
            raise ValueError("add_edge needs at least one start node")
        if not isinstance(start_key, str):
            # As in LangGraph, a join names nodes that exist already.
            for source in sources:
                if source not in self.nodes:
                    raise ValueError(f"Need to add_node `{source}` first")
            if end_key != END and end_key not in self.nodes:
                raise ValueError(f"Need to add_node `{end_key}` first")
        if (sources, end_key) not in self.edges:
            self.edges.append((sources, end_key))
        return self

    def add_conditional_edges(
        self,
        source: str,
        path: Callable[..., Any],
        path_map: Mapping[str, str] | Sequence[str] | None = None,
    ) -> Self:
        """After `source`, call `path` with the state; it returns a node name,
        a `Send`, or a list of them (`END` to stop). `path_map` maps its
        return values to node names; a list of names maps each to itself."""
        if not callable(path):
            raise TypeError(f"the router of {source!r} must be callable, not {path!r}")
        _check_takes_state(path, f"the router of {source!r}")
        ends: dict[str, str] | None = None
        if path_map is not None:
            pairs = (
                list(path_map.items())
                if isinstance(path_map, Mapping)
                else [(name, name) for name in path_map]
            )
            for key, target in pairs:
                if not isinstance(key, str) or not isinstance(target, str):
                    raise TypeError(
                        f"path_map of {source!r} must map strings to node names, "
                        f"not {key!r} -> {target!r}"
                    )
            ends = dict(pairs)
        self.branches.append(_Branch(source, path, ends))
        return self

    def add_sequence(
        self, nodes: Sequence[Callable[..., Any] | tuple[str, Callable[..., Any]]]
    ) -> Self:
        """Add nodes that run one after the other: functions, or
        (name, function) pairs."""
        if not nodes:
            raise ValueError("Sequence requires at least one node.")
        previous: str | None = None
        for node in nodes:
            if isinstance(node, tuple):
                name, fn = node
                self.add_node(name, fn)
            else:
                name = _name_of(node)
                self.add_node(name, node)
            if previous is not None:
                self.add_edge(previous, name)
            previous = name
        return self

    def set_entry_point(self, key: str) -> Self:
        """Same as `add_edge(START, key)`."""
        return self.add_edge(START, key)

    def set_conditional_entry_point(
        self,
        path: Callable[..., Any],
        path_map: Mapping[str, str] | Sequence[str] | None = None,
    ) -> Self:
        """Same as `add_conditional_edges(START, path, path_map)`."""
        return self.add_conditional_edges(START, path, path_map)

    def set_finish_point(self, key: str) -> Self:
        """Same as `add_edge(key, END)`."""
        return self.add_edge(key, END)

    def compile(
        self,
        *,
        name: str = "LangGraph",
        interrupt_before: Sequence[str] | Literal["*"] | None = None,
        interrupt_after: Sequence[str] | Literal["*"] | None = None,
    ) -> CompiledStateGraph:
        """Check the graph and freeze it for a `Worker`. `interrupt_before`
        and `interrupt_after` are breakpoints: node names, or "*" for all."""
        if not name or ":" in name:
            raise ValueError(
                f"graph name {name!r} must be non-empty and without ':' "
                "(its nodes are served as '<graph>:<node>')"
            )
        self._validate()
        for node in self.nodes.values():
            if isinstance(node.fn, CompiledStateGraph) and node.fn.name == name:
                raise ValueError(
                    f"subgraph node {node.name!r} runs a graph named {name!r} like this one; "
                    "compile the subgraph with its own name"
                )
        return CompiledStateGraph(
            self,
            name=name,
            interrupt_before=self._breakpoints(interrupt_before),
            interrupt_after=self._breakpoints(interrupt_after),
        )

    def _validate(self) -> None:
        sources = {source for sources, _ in self.edges for source in sources}
        sources.update(branch.source for branch in self.branches)
        for source in sources:
            if source != START and source not in self.nodes:
                raise ValueError(f"Found edge starting at unknown node '{source}'")
        if START not in sources:
            raise ValueError(
                "Graph must have an entrypoint: add at least one edge from START to another node"
            )
        for branch in self.branches:
            for target in (branch.path_map or {}).values():
                if target != END and target not in self.nodes:
                    raise ValueError(
                        f"At '{branch.source}' node, '{_name_of(branch.router)}' branch found "
                        f"unknown target '{target}'"
                    )
        for _, target in self.edges:
            if target != END and target not in self.nodes:
                raise ValueError(f"Found edge ending at unknown node `{target}`")

    def _breakpoints(self, nodes: Sequence[str] | Literal["*"] | None) -> list[str]:
        if nodes == "*":
            return list(self.nodes)
        names = [nodes] if isinstance(nodes, str) else list(nodes or ())
        for node in names:
            if node not in self.nodes:
                raise ValueError(f"Interrupt node `{node}` not found")
        return list(dict.fromkeys(names))


def _name_of(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


# --- the compiled graph -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GraphTask:
    """A node or a router of a compiled graph, served by workers as a task."""

    name: str
    fn: Callable[..., Any]
    router: bool
    retry_policy: RetryPolicy | None = None
    params: frozenset[str] = field(init=False)
    """The parameters of `fn` the worker gives: `store`, `writer`."""

    def __post_init__(self) -> None:
        try:
            declared = inspect.signature(self.fn).parameters
        except (TypeError, ValueError):  # builtins without a signature
            declared = {}  # type: ignore[assignment]
        object.__setattr__(self, "params", frozenset(n for n in NODE_INJECTED if n in declared))

    def encode(self, result: Any) -> Any:
        """The JSON result the service expects (see graph.proto)."""
        if self.router:
            return encode_router_result(result, self.name)
        return encode_node_result(result, self.name)


class CompiledStateGraph:
    """A checked `StateGraph`, ready to be served by a `Worker` under `name`.

    The worker registers its spec with the service; `nodes` maps node names
    to their functions.

        worker = Worker(functions=[graph])
        run = await client.invoke(graph.name, {"topic": "cats"}, thread_id="1")
    """

    def __init__(
        self,
        builder: StateGraph,
        *,
        name: str,
        interrupt_before: Sequence[str] = (),
        interrupt_after: Sequence[str] = (),
    ) -> None:
        self.builder = builder
        self.name = name
        self.interrupt_before = tuple(interrupt_before)
        self.interrupt_after = tuple(interrupt_after)
        self.nodes: dict[str, Callable[..., Any] | CompiledStateGraph] = {
            node.name: node.fn for node in builder.nodes.values()
        }
        self.tasks: dict[str, GraphTask] = {}
        self.subgraphs: dict[str, CompiledStateGraph] = {}
        for node in builder.nodes.values():
            if isinstance(node.fn, CompiledStateGraph):
                self._add_subgraph(node.fn)
                continue
            task = GraphTask(f"{name}:{node.name}", node.fn, False, node.retry_policy)
            self.tasks[task.name] = task
        self._routers: list[tuple[_Branch, str]] = []
        counts: dict[str, int] = {}
        for branch in builder.branches:
            index = counts.get(branch.source, 0)
            counts[branch.source] = index + 1
            task = GraphTask(f"{name}:{branch.source}:route{index}", branch.router, True)
            self.tasks[task.name] = task
            self._routers.append((branch, task.name))
        self._spec = self._to_proto()

    def _add_subgraph(self, graph: CompiledStateGraph) -> None:
        """Serve a subgraph, and the subgraphs it has, with this graph."""
        for sub in (*graph.subgraphs.values(), graph):
            known = self.subgraphs.get(sub.name)
            if known is not None and known is not sub:
                raise ValueError(
                    f"two different subgraphs of {self.name!r} are named {sub.name!r}; "
                    "compile each with its own name"
                )
            self.subgraphs[sub.name] = sub

    def invoke(self, input: Any) -> Any:
        """Run this graph as a subgraph from inside a node (sync code): its
        output, once it finished. An interrupt inside it pauses the run; on
        resume the node runs again and the subgraph continues where it
        stopped. Outside a node, run a graph with `Client.invoke`."""
        return current().call(self.name, input, None).result()

    async def ainvoke(self, input: Any) -> Any:
        """`invoke` for async nodes."""
        return await current().call(self.name, input, None)

    def _to_proto(self) -> graph_pb2.GraphSpec:
        builder = self.builder
        spec = graph_pb2.GraphSpec(
            name=self.name,
            interrupt_before=self.interrupt_before,
            interrupt_after=self.interrupt_after,
            input_channels=builder.input_channels,
            output_channels=builder.output_channels,
        )
        for key, channel in builder.channels.items():
            added = spec.channels.add(name=key, reducer=channel.reducer)
            if channel.default is not None:
                to_value(channel.default[0], added.default)
        for node in builder.nodes.values():
            if isinstance(node.fn, CompiledStateGraph):
                spec.nodes.add(name=node.name, subgraph=node.fn.name)
                continue
            added_node = spec.nodes.add(name=node.name, function=f"{self.name}:{node.name}")
            if node.retry_policy is not None:
                added_node.retry_policy.CopyFrom(node.retry_policy._to_proto())
        for sources, target in builder.edges:
            spec.edges.add(sources=sources, target=target)
        for branch, router in self._routers:
            spec.conditional_edges.add(
                source=branch.source, router=router, path_map=branch.path_map or {}
            )
        return spec

    def __repr__(self) -> str:
        return f"<graph {self.name}>"


# --- results, as the service reads them -------------------------------------------------------


def _send(send: Send) -> dict[str, Any]:
    return {_MARK: "send", "node": send.node, "arg": send.arg}


def _destinations(value: Any, task: str, what: str) -> list[Any]:
    items = [value] if isinstance(value, str | Send) else value
    if not isinstance(items, list | tuple):
        raise TypeError(
            f"{task} returned {what} {value!r}; expected a node name, a Send, or a list of them"
        )
    out: list[Any] = []
    for item in items:
        if isinstance(item, Send):
            out.append(_send(item))
        elif isinstance(item, str) and item != START:
            out.append(item)
        else:
            raise TypeError(
                f"{task} returned {what} {item!r}; expected a node name, END, or a Send"
            )
    return out


def encode_node_result(result: Any, task: str = "a node") -> Any:
    """A node's return value as the node task's JSON result: null, the
    update object, or a command object."""
    if result is None:
        return None
    if isinstance(result, dict):
        if _MARK in result:
            raise TypeError(f"{task} returned an update with the reserved key {_MARK!r}")
        return result
    if isinstance(result, Command):
        if result.resume is not None:
            raise ValueError(f"{task} returned Command(resume=...); nodes return update and goto")
        update = {} if result.update is None else result.update
        if not isinstance(update, dict):
            raise TypeError(f"{task} returned Command(update={update!r}); expected a dict")
        return {
            _MARK: "command",
            "update": update,
            "goto": _destinations(result.goto, task, "goto"),
        }
    raise TypeError(
        f"{task} returned {type(result).__name__}; expected a dict update, None or a Command"
    )


def encode_router_result(result: Any, task: str = "a router") -> list[Any]:
    """A router's return value as a list of node names and Send objects."""
    return _destinations(result, task, "route")
