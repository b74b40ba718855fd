"""GraphSpec messages to the engine's GraphModel, and back."""

from __future__ import annotations

from cairn.v1 import graph_pb2
from cairn_server.api import convert
from cairn_server.api.values import to_json, to_value
from cairn_server.engine.graph_model import (
    BranchModel,
    ChannelModel,
    EdgeModel,
    GraphModel,
    NodeModel,
)

REDUCERS = {
    graph_pb2.REDUCER_UNSPECIFIED: "last_value",
    graph_pb2.REDUCER_LAST_VALUE: "last_value",
    graph_pb2.REDUCER_ADD: "add",
    graph_pb2.REDUCER_APPEND: "append",
    graph_pb2.REDUCER_MERGE: "merge",
    graph_pb2.REDUCER_ADD_MESSAGES: "add_messages",
}


def graph_model(spec: graph_pb2.GraphSpec) -> GraphModel:
    """Convert and validate; raises INVALID_ARGUMENT."""
    model = GraphModel(
        name=spec.name,
        channels={
            c.name: ChannelModel(
                name=c.name,
                reducer=convert.enum_value(REDUCERS, c.reducer, "reducer"),
                has_default=c.HasField("default"),
                default=to_json(c.default, "default") if c.HasField("default") else None,
            )
            for c in spec.channels
        },
        nodes={
            n.name: NodeModel(
                n.name,
                n.function,
                convert.retry_policy(n.retry_policy) if n.HasField("retry_policy") else None,
                n.subgraph,
            )
            for n in spec.nodes
        },
        edges=[EdgeModel(tuple(e.sources), e.target) for e in spec.edges],
        branches=[
            BranchModel(b.source, b.router, dict(b.path_map)) for b in spec.conditional_edges
        ],
        interrupt_before=frozenset(spec.interrupt_before),
        interrupt_after=frozenset(spec.interrupt_after),
        input_channels=tuple(spec.input_channels),
        output_channels=tuple(spec.output_channels),
    )
    model.validate()
    return model


def graph_spec(model: GraphModel) -> graph_pb2.GraphSpec:
    """The GraphSpec a worker registered for `model` (GetGraph)."""
    reducers = {name: value for value, name in REDUCERS.items() if value}
    spec = graph_pb2.GraphSpec(
        name=model.name,
        edges=[graph_pb2.EdgeSpec(sources=e.sources, target=e.target) for e in model.edges],
        conditional_edges=[
            graph_pb2.ConditionalEdgeSpec(source=b.source, router=b.router, path_map=b.path_map)
            for b in model.branches
        ],
        interrupt_before=sorted(model.interrupt_before),
        interrupt_after=sorted(model.interrupt_after),
        input_channels=model.input_channels,
        output_channels=model.output_channels,
    )
    for channel in model.channels.values():
        added = spec.channels.add(name=channel.name, reducer=reducers[channel.reducer])
        if channel.has_default:
            added.default.CopyFrom(to_value(channel.default))
    for node in model.nodes.values():
        added_node = spec.nodes.add(name=node.name)
        if node.subgraph:
            added_node.subgraph = node.subgraph
        else:
            added_node.function = node.function
        if node.retry_policy is not None:
            added_node.retry_policy.CopyFrom(convert.retry_policy_pb(node.retry_policy))
    return spec
