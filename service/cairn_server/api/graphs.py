"""GraphSpec messages to the engine's GraphModel."""

from __future__ import annotations

from cairn.v1 import graph_pb2
from cairn_server.api import convert
from cairn_server.api.values import to_json
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
