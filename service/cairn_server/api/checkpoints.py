"""CheckpointService: LangGraph's BaseCheckpointSaver over gRPC.

Values stay as LangGraph's serializer wrote them; only the metadata is read
(as JSON), to filter List and to find a checkpoint's run.
"""

from __future__ import annotations

import json
from typing import Any

from cairn.v1 import checkpoint_service_pb2, checkpoint_service_pb2_grpc, thread_service_pb2
from cairn_server.api.errors import unary
from cairn_server.domain import Json
from cairn_server.errors import error_for
from cairn_server.store import Store
from cairn_server.store.base import LgBlob, LgCheckpoint, LgWrite

pb = checkpoint_service_pb2

CAPABILITIES = (
    "put",
    "put_writes",
    "get_tuple",
    "list",
    "delete_thread",
    "delete_for_runs",
    "copy_thread",
    "prune",
)


def _required(value: str, field: str) -> str:
    if not value:
        raise error_for("INVALID_ARGUMENT", f"{field} is required", field=field)
    return value


def _json_object(text: str, field: str) -> dict[str, Json]:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise error_for("INVALID_ARGUMENT", f"{field} is not JSON: {error}", field=field) from None
    if not isinstance(value, dict):
        raise error_for("INVALID_ARGUMENT", f"{field} must be a JSON object", field=field)
    return value


def _to_proto(checkpoint: LgCheckpoint) -> checkpoint_service_pb2.SavedCheckpoint:
    return pb.SavedCheckpoint(
        thread_id=checkpoint.thread_id,
        checkpoint_ns=checkpoint.checkpoint_ns,
        checkpoint_id=checkpoint.checkpoint_id,
        parent_checkpoint_id=checkpoint.parent_checkpoint_id or "",
        checkpoint=pb.TypedValue(type=checkpoint.type, data=checkpoint.data),
        metadata_json=checkpoint.metadata,
        channel_versions=checkpoint.channel_versions,
        blobs=[
            pb.SavedBlob(
                channel=b.channel,
                version=b.version,
                value=pb.TypedValue(type=b.type, data=b.data or b""),
            )
            for b in checkpoint.blobs
        ],
        pending_writes=[
            pb.SavedWrite(
                task_id=w.task_id,
                task_path=w.task_path,
                idx=w.idx,
                channel=w.channel,
                value=pb.TypedValue(type=w.type, data=w.data or b""),
            )
            for w in checkpoint.writes
        ],
    )


class CheckpointServicer(checkpoint_service_pb2_grpc.CheckpointServiceServicer):
    def __init__(self, store: Store) -> None:
        self._store = store

    @unary
    async def GetTuple(
        self, request: checkpoint_service_pb2.GetTupleRequest, context: Any
    ) -> checkpoint_service_pb2.GetTupleResponse:
        found = await self._store.lg_get(
            _required(request.thread_id, "thread_id"),
            request.checkpoint_ns,
            request.checkpoint_id or None,
        )
        if found is None:
            return pb.GetTupleResponse()
        return pb.GetTupleResponse(checkpoint=_to_proto(found))

    @unary
    async def ListCheckpoints(
        self, request: checkpoint_service_pb2.ListCheckpointsRequest, context: Any
    ) -> checkpoint_service_pb2.ListCheckpointsResponse:
        if request.limit < 0:
            raise error_for("INVALID_ARGUMENT", "limit must not be negative", field="limit")

        r = request
        found = await self._store.lg_list(
            thread_id=r.thread_id if r.HasField("thread_id") else None,
            checkpoint_ns=r.checkpoint_ns if r.HasField("checkpoint_ns") else None,
            checkpoint_id=r.checkpoint_id if r.HasField("checkpoint_id") else None,
            metadata=_json_object(request.filter_json, "filter_json")
            if request.filter_json
            else None,
            before=r.before_checkpoint_id if r.HasField("before_checkpoint_id") else None,
            limit=request.limit or None,
        )
        return pb.ListCheckpointsResponse(checkpoints=[_to_proto(c) for c in found])

    @unary
    async def PutCheckpoint(
        self, request: checkpoint_service_pb2.PutCheckpointRequest, context: Any
    ) -> checkpoint_service_pb2.PutCheckpointResponse:
        _json_object(request.metadata_json, "metadata_json")
        await self._store.lg_put(
            LgCheckpoint(
                thread_id=_required(request.thread_id, "thread_id"),
                checkpoint_ns=request.checkpoint_ns,
                checkpoint_id=_required(request.checkpoint_id, "checkpoint_id"),
                parent_checkpoint_id=request.parent_checkpoint_id or None,
                type=request.checkpoint.type,
                data=request.checkpoint.data,
                metadata=request.metadata_json,
                channel_versions=dict(request.channel_versions),
                blobs=[
                    LgBlob(b.channel, b.version, b.value.type, b.value.data) for b in request.blobs
                ],
            )
        )
        return pb.PutCheckpointResponse()

    @unary
    async def PutWrites(
        self, request: checkpoint_service_pb2.PutWritesRequest, context: Any
    ) -> checkpoint_service_pb2.PutWritesResponse:
        await self._store.lg_put_writes(
            _required(request.thread_id, "thread_id"),
            request.checkpoint_ns,
            _required(request.checkpoint_id, "checkpoint_id"),
            [
                LgWrite(w.task_id, w.task_path, w.idx, w.channel, w.value.type, w.value.data)
                for w in request.writes
            ],
        )
        return pb.PutWritesResponse()

    @unary
    async def DeleteThreadCheckpoints(
        self, request: checkpoint_service_pb2.DeleteThreadCheckpointsRequest, context: Any
    ) -> checkpoint_service_pb2.DeleteThreadCheckpointsResponse:
        await self._store.lg_delete_thread(_required(request.thread_id, "thread_id"))
        return pb.DeleteThreadCheckpointsResponse()

    @unary
    async def DeleteForRuns(
        self, request: checkpoint_service_pb2.DeleteForRunsRequest, context: Any
    ) -> checkpoint_service_pb2.DeleteForRunsResponse:
        if request.run_ids:
            await self._store.lg_delete_for_runs(list(request.run_ids))
        return pb.DeleteForRunsResponse()

    @unary
    async def CopyThreadCheckpoints(
        self, request: checkpoint_service_pb2.CopyThreadCheckpointsRequest, context: Any
    ) -> checkpoint_service_pb2.CopyThreadCheckpointsResponse:
        await self._store.lg_copy_thread(
            _required(request.source_thread_id, "source_thread_id"),
            _required(request.target_thread_id, "target_thread_id"),
        )
        return pb.CopyThreadCheckpointsResponse()

    @unary
    async def PruneCheckpoints(
        self, request: checkpoint_service_pb2.PruneCheckpointsRequest, context: Any
    ) -> checkpoint_service_pb2.PruneCheckpointsResponse:
        strategy = request.strategy
        if strategy == thread_service_pb2.PRUNE_STRATEGY_KEEP_LATEST:
            keep_latest = True
        elif strategy == thread_service_pb2.PRUNE_STRATEGY_DELETE:
            keep_latest = False
        else:
            raise error_for("INVALID_ARGUMENT", "strategy is required", field="strategy")
        await self._store.lg_prune(list(request.thread_ids), keep_latest=keep_latest)
        return pb.PruneCheckpointsResponse()

    @unary
    async def GetCapabilities(
        self, request: checkpoint_service_pb2.GetCapabilitiesRequest, context: Any
    ) -> checkpoint_service_pb2.GetCapabilitiesResponse:
        supported = CAPABILITIES if self._store.supports_langgraph else ()
        return pb.GetCapabilitiesResponse(capabilities=supported)
