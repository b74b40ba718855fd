"""GraphService: the StateGraphs workers registered, as Studio draws them."""

from __future__ import annotations

from typing import Any

from cairn.v1 import graph_service_pb2 as pb
from cairn.v1 import graph_service_pb2_grpc
from cairn_server.api import scope
from cairn_server.api.errors import unary
from cairn_server.api.graphs import graph_spec
from cairn_server.errors import error_for
from cairn_server.runtime.manager import RunManager


class GraphServicer(graph_service_pb2_grpc.GraphServiceServicer):
    def __init__(self, runs: RunManager) -> None:
        self._runs = runs

    @unary
    async def GetGraph(self, request: pb.GetGraphRequest, context: Any) -> pb.GetGraphResponse:
        if not request.name:
            raise error_for("INVALID_ARGUMENT", "name is required", field="name")
        graph = await self._runs.registered_graph(scope.namespace(), request.name)
        if graph is None:
            raise error_for(
                "TARGET_NOT_FOUND",
                f"no worker registered a graph named {request.name!r}",
                target=request.name,
            )
        return pb.GetGraphResponse(graph=graph_spec(graph))
