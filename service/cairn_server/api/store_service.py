"""StoreService: the long-term memory store, one batch of memory operations
per call, in the caller's namespace."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from cairn.v1 import store_service_pb2 as pb
from cairn.v1 import store_service_pb2_grpc
from cairn_server.api import scope
from cairn_server.api import store_convert as convert
from cairn_server.api.errors import unary
from cairn_server.auth import current
from cairn_server.auth.principal import Role
from cairn_server.errors import error_for
from cairn_server.memory import MemoryStore, SemanticSearchUnavailable
from cairn_server.memory import base as m

WRITE_ROLES = (Role.WRITER, Role.WORKER)
"""Who may change a namespace's memories: its writers, and its workers (the
tasks and nodes that remember)."""


class StoreServicer(store_service_pb2_grpc.StoreServiceServicer):
    def __init__(
        self,
        memory: MemoryStore,
        *,
        max_payload_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._memory = memory
        self._limit = max_payload_bytes
        self._clock = clock

    async def _run(self, ops: Sequence[m.Operation]) -> list[m.Result]:
        try:
            return await self._memory.batch(scope.namespace(), ops, now=self._clock())
        except SemanticSearchUnavailable as error:
            raise error_for(
                "UNSUPPORTED",
                f"this server cannot search by vector: {error}",
                field="query_vector",
            ) from None

    @unary
    async def GetItem(self, request: pb.GetItemRequest, context: Any) -> pb.GetItemResponse:
        (result,) = await self._run([convert.get_op(request)])
        return convert.get_result(result)

    @unary
    async def PutItem(self, request: pb.PutItemRequest, context: Any) -> pb.PutItemResponse:
        (result,) = await self._run([convert.put_op(request, limit=self._limit)])
        return convert.put_result(result)

    @unary
    async def DeleteItem(
        self, request: pb.DeleteItemRequest, context: Any
    ) -> pb.DeleteItemResponse:
        (result,) = await self._run([convert.delete_op(request)])
        return convert.delete_result(result)

    @unary
    async def SearchItems(
        self, request: pb.SearchItemsRequest, context: Any
    ) -> pb.SearchItemsResponse:
        (result,) = await self._run([convert.search_op(request)])
        return convert.search_result(result)

    @unary
    async def ListNamespaces(
        self, request: pb.ListNamespacesRequest, context: Any
    ) -> pb.ListNamespacesResponse:
        (result,) = await self._run([convert.list_op(request)])
        return convert.list_result(result)

    @unary
    async def BatchItems(
        self, request: pb.BatchItemsRequest, context: Any
    ) -> pb.BatchItemsResponse:
        ops = convert.batch_ops(request, limit=self._limit)
        if convert.writes(ops):
            _require_write()
        return convert.batch_result(ops, await self._run(ops))


def _require_write() -> None:
    """BatchItems is open to readers (its role in METHOD_ROLES); a batch that
    writes needs what PutItem needs."""
    caller = current()
    if not any(caller.principal.allows(caller.namespace, role) for role in WRITE_ROLES):
        raise error_for(
            "PERMISSION_DENIED",
            "a batch with puts or deletes needs the writer or worker role",
            namespace=caller.namespace,
        )
