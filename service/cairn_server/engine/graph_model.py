"""A registered StateGraph, in domain terms (from graph.proto's GraphSpec)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cairn_server.domain import Json, RetryPolicy
from cairn_server.engine.reducers import REDUCERS
from cairn_server.errors import error_for

START, END = "__start__", "__end__"


@dataclass(slots=True, frozen=True)
class ChannelModel:
    name: str
    reducer: str = "last_value"
    has_default: bool = False
    default: Json = None


@dataclass(slots=True, frozen=True)
class NodeModel:
    name: str
    function: str  # "" for a subgraph node
    retry_policy: RetryPolicy | None = None
    subgraph: str = ""  # the graph a subgraph node runs


@dataclass(slots=True, frozen=True)
class EdgeModel:
    sources: tuple[str, ...]
    target: str

    @property
    def join_key(self) -> str:
        return f"join:{'+'.join(self.sources)}:{self.target}"


@dataclass(slots=True, frozen=True)
class BranchModel:
    source: str
    router: str
    path_map: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class GraphModel:
    name: str
    channels: dict[str, ChannelModel]
    nodes: dict[str, NodeModel]
    edges: list[EdgeModel] = field(default_factory=list)
    branches: list[BranchModel] = field(default_factory=list)
    interrupt_before: frozenset[str] = frozenset()
    interrupt_after: frozenset[str] = frozenset()
    input_channels: tuple[str, ...] = ()
    output_channels: tuple[str, ...] = ()

    def validate(self) -> None:
        """Raise INVALID_ARGUMENT for a graph the engine cannot run."""

        def invalid(message: str) -> Exception:
            return error_for("INVALID_ARGUMENT", f"graph {self.name!r}: {message}", graph=self.name)

        if not self.name:
            raise invalid("a graph needs a name")
        for channel in self.channels.values():
            if channel.reducer not in REDUCERS:
                raise invalid(f"channel {channel.name!r} has an unknown reducer")
            if channel.name.startswith("__"):
                raise invalid(f"channel name {channel.name!r} is reserved")
        for node in self.nodes.values():
            if node.name in (START, END) or not node.name:
                raise invalid(f"node name {node.name!r} is reserved")
            if bool(node.function) == bool(node.subgraph):
                raise invalid(f"node {node.name!r} needs a function or a subgraph")
            if node.subgraph == self.name:
                raise invalid(f"node {node.name!r} runs the graph itself")
        known = set(self.nodes)
        for edge in self.edges:
            for source in edge.sources:
                if source not in known and source != START:
                    raise invalid(f"edge from unknown node {source!r}")
            if edge.target not in known and edge.target != END:
                raise invalid(f"edge to unknown node {edge.target!r}")
        for branch in self.branches:
            if branch.source not in known and branch.source != START:
                raise invalid(f"conditional edge from unknown node {branch.source!r}")
            for target in branch.path_map.values():
                if target not in known and target != END:
                    raise invalid(f"conditional edge to unknown node {target!r}")
        if not any(START in e.sources for e in self.edges) and not any(
            b.source == START for b in self.branches
        ):
            raise invalid("no edge from __start__; add one with add_edge(START, node)")
        if not self._can_end():
            raise invalid(
                "no path from __start__ reaches __end__: every node reached has edges "
                "that lead back into the graph; add an edge to END"
            )
        for name in self.interrupt_before | self.interrupt_after:
            if name not in known:
                raise invalid(f"breakpoint on unknown node {name!r}")
        for key in (*self.input_channels, *self.output_channels):
            if key not in self.channels:
                raise invalid(f"unknown input or output key {key!r}")

    def _can_end(self) -> bool:
        """Whether some node reached from __start__ can end the run: it has no
        outgoing edge, an edge to __end__, or a router that may return
        __end__ (any router without a path map may)."""
        seen: set[str] = set()
        todo = [START]
        while todo:
            node = todo.pop()
            if node == END:
                return True
            if node in seen:
                continue
            seen.add(node)
            targets = [e.target for e in self.edges if node in e.sources]
            for branch in (b for b in self.branches if b.source == node):
                if not branch.path_map:
                    return True
                targets.extend(branch.path_map.values())
            if not targets and node != START:
                return True
            todo.extend(targets)
        return False

    def check_served(self, tasks: set[str], graphs: set[str]) -> None:
        """Raise INVALID_ARGUMENT unless every node and router is among the
        `tasks` a worker serves and every subgraph among the known `graphs`."""
        for node in self.nodes.values():
            if node.function and node.function not in tasks:
                raise error_for(
                    "INVALID_ARGUMENT",
                    f"graph {self.name!r}: no worker serves node {node.name!r} "
                    f"(task {node.function!r}); register it with the graph",
                    graph=self.name,
                    node=node.name,
                )
            if node.subgraph and node.subgraph not in graphs:
                raise error_for(
                    "INVALID_ARGUMENT",
                    f"graph {self.name!r}: node {node.name!r} runs unknown graph "
                    f"{node.subgraph!r}; register the subgraph too",
                    graph=self.name,
                    node=node.name,
                )
        for branch in self.branches:
            if branch.router not in tasks:
                raise error_for(
                    "INVALID_ARGUMENT",
                    f"graph {self.name!r}: no worker serves the router after "
                    f"{branch.source!r} (task {branch.router!r})",
                    graph=self.name,
                    node=branch.source,
                )


def _policy_json(policy: RetryPolicy | None) -> Json:
    if policy is None:
        return None
    return {
        "initial_interval": policy.initial_interval,
        "backoff_factor": policy.backoff_factor,
        "max_interval": policy.max_interval,
        "max_attempts": policy.max_attempts,
        "jitter": policy.jitter,
    }


def graph_to_json(graph: GraphModel) -> dict[str, Json]:
    """The graph as stored, so a restarted server can resume its runs."""
    return {
        "name": graph.name,
        "channels": [
            {
                "name": c.name,
                "reducer": c.reducer,
                "has_default": c.has_default,
                "default": c.default,
            }
            for c in graph.channels.values()
        ],
        "nodes": [
            {
                "name": n.name,
                "function": n.function,
                "subgraph": n.subgraph,
                "retry_policy": _policy_json(n.retry_policy),
            }
            for n in graph.nodes.values()
        ],
        "edges": [{"sources": list(e.sources), "target": e.target} for e in graph.edges],
        "branches": [
            {"source": b.source, "router": b.router, "path_map": b.path_map} for b in graph.branches
        ],
        "interrupt_before": sorted(graph.interrupt_before),
        "interrupt_after": sorted(graph.interrupt_after),
        "input_channels": list(graph.input_channels),
        "output_channels": list(graph.output_channels),
    }


def graph_from_json(data: dict[str, Json]) -> GraphModel:
    return GraphModel(
        name=data["name"],
        channels={c["name"]: ChannelModel(**c) for c in data["channels"]},
        nodes={
            n["name"]: NodeModel(
                n["name"],
                n["function"],
                RetryPolicy(**n["retry_policy"]) if n.get("retry_policy") else None,
                n.get("subgraph", ""),
            )
            for n in data["nodes"]
        },
        edges=[EdgeModel(tuple(e["sources"]), e["target"]) for e in data["edges"]],
        branches=[
            BranchModel(b["source"], b["router"], dict(b["path_map"])) for b in data["branches"]
        ],
        interrupt_before=frozenset(data["interrupt_before"]),
        interrupt_after=frozenset(data["interrupt_after"]),
        input_channels=tuple(data["input_channels"]),
        output_channels=tuple(data["output_channels"]),
    )
