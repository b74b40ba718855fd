"""CheckpointService: LangGraph's BaseCheckpointSaver over gRPC.

Values stay as LangGraph's serializer wrote them; only the metadata is read
(as JSON), to filter List and to find a checkpoint's run. The checkpoints live
in the native tables, so deleting and pruning are the ThreadService's.
"""

from __future__ import annotations

import json
from typing import Any

from cairn.v1 import checkpoint_service_pb2, checkpoint_service_pb2_grpc, thread_service_pb2
from cairn_server import namespaces
from cairn_server.api import scope
from cairn_server.api.errors import unary
from cairn_server.api.values import check_depth, check_size, too_deep
from cairn_server.domain import Json
from cairn_server.errors import error_for
from cairn_server.runtime.manager import RunManager
from cairn_server.store import decode_token, encode_token
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


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def _json_object(text: str, field: str) -> dict[str, Json]:
    """`text` parsed as a JSON object: strict JSON (no NaN or Infinity, which
    the store's JSON cannot hold either) at most MAX_JSON_DEPTH deep."""
    try:
        value = json.loads(text, parse_constant=_not_json)
    except RecursionError:  # nested deeper than Python parses: far too deep
        raise too_deep(field) from None
    except ValueError as error:
        raise error_for("INVALID_ARGUMENT", f"{field} is not JSON: {error}", field=field) from None
    if not isinstance(value, dict):
        raise error_for("INVALID_ARGUMENT", f"{field} must be a JSON object", field=field)
    check_depth(value, field)
    return value


DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def _page_size(request: checkpoint_service_pb2.ListCheckpointsRequest) -> int:
    if request.limit < 0:
        raise error_for("INVALID_ARGUMENT", "limit must not be negative", field="limit")
    if request.page_size < 0:
        raise error_for("INVALID_ARGUMENT", "page_size must not be negative", field="page_size")
    return min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _page_position(token: str) -> tuple[tuple[str, str, str] | None, int]:
    """The last (checkpoint_id, thread_id, checkpoint_ns) a page token names and
    how many checkpoints the earlier pages returned."""
    if not token:
        return None, 0
    try:
        key = decode_token(token, 4)
    except ValueError as error:
        raise error_for("INVALID_ARGUMENT", str(error), field="page_token") from None
    *last, returned = key
    if not all(isinstance(part, str) for part in last) or not isinstance(returned, int):
        raise error_for("INVALID_ARGUMENT", f"invalid page token {token!r}", field="page_token")
    checkpoint_id, thread_id, checkpoint_ns = (str(part) for part in last)
    return (checkpoint_id, thread_id, checkpoint_ns), returned


def _run_id(metadata: dict[str, Json]) -> str | None:
    run_id = metadata.get("run_id")
    return run_id if isinstance(run_id, str) else None


def _to_proto(checkpoint: LgCheckpoint) -> checkpoint_service_pb2.SavedCheckpoint:
    return pb.SavedCheckpoint(
        thread_id=namespaces.unscoped(checkpoint.thread_id),
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
    def __init__(self, runs: RunManager, *, max_payload_bytes: int) -> None:
        self._runs = runs
        self._store = runs.store
        self._limit = max_payload_bytes

    def _check_sizes(self, values: list[tuple[str, int]]) -> None:
        """Each stored value within the payload limit, as a JSON value must be."""
        for field, size in values:
            check_size(size, self._limit, field)

    def _writable(self, thread_id: str, field: str = "thread_id") -> str:
        """The key of the caller's thread `thread_id`, which a write may
        change: a thread with an active native run is left to that run."""
        key = scope.thread_key(_required(thread_id, field))
        if self._runs.thread_is_busy(key):
            raise error_for(
                "THREAD_BUSY", f"thread {thread_id!r} has an active run", thread_id=thread_id
            )
        return key

    @unary
    async def GetTuple(
        self, request: checkpoint_service_pb2.GetTupleRequest, context: Any
    ) -> checkpoint_service_pb2.GetTupleResponse:
        found = await self._store.lg_get(
            scope.thread_key(_required(request.thread_id, "thread_id")),
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
        page_size = _page_size(request)
        after, returned = _page_position(request.page_token)
        if request.limit:
            page_size = min(page_size, request.limit - returned)
        if page_size <= 0:
            return pb.ListCheckpointsResponse()
        r = request
        found = await self._store.lg_list(
            thread_id=scope.thread_key(r.thread_id) if r.HasField("thread_id") else None,
            checkpoint_ns=r.checkpoint_ns if r.HasField("checkpoint_ns") else None,
            checkpoint_id=r.checkpoint_id if r.HasField("checkpoint_id") else None,
            metadata=_json_object(r.filter_json, "filter_json") if r.filter_json else None,
            before=r.before_checkpoint_id if r.HasField("before_checkpoint_id") else None,
            after=after,
            limit=page_size + 1,
            namespace=None if r.HasField("thread_id") else scope.namespace(),
        )
        page = found[:page_size]
        token = ""
        if len(found) > page_size and returned + len(page) != request.limit:
            last = page[-1]
            position: list[Json] = [last.checkpoint_id, last.thread_id, last.checkpoint_ns]
            token = encode_token([*position, returned + len(page)])
        return pb.ListCheckpointsResponse(
            checkpoints=[_to_proto(c) for c in page], next_page_token=token
        )

    @unary
    async def PutCheckpoint(
        self, request: checkpoint_service_pb2.PutCheckpointRequest, context: Any
    ) -> checkpoint_service_pb2.PutCheckpointResponse:
        self._check_sizes(
            [
                ("metadata_json", len(request.metadata_json.encode())),
                ("checkpoint", len(request.checkpoint.data)),
                *((f"blobs[{b.channel}]", len(b.value.data)) for b in request.blobs),
            ]
        )
        metadata = _json_object(request.metadata_json, "metadata_json")
        thread_key = self._writable(request.thread_id)
        await self._store.lg_put(
            LgCheckpoint(
                thread_id=thread_key,
                checkpoint_ns=request.checkpoint_ns,
                checkpoint_id=_required(request.checkpoint_id, "checkpoint_id"),
                parent_checkpoint_id=request.parent_checkpoint_id or None,
                type=request.checkpoint.type,
                data=request.checkpoint.data,
                metadata=request.metadata_json,
                channel_versions=dict(request.channel_versions),
                run_id=_run_id(metadata),
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
        self._check_sizes([(f"writes[{w.channel}]", len(w.value.data)) for w in request.writes])
        await self._store.lg_put_writes(
            scope.thread_key(_required(request.thread_id, "thread_id")),
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
        await self._store.delete_threads([self._writable(request.thread_id)])
        return pb.DeleteThreadCheckpointsResponse()

    @unary
    async def DeleteForRuns(
        self, request: checkpoint_service_pb2.DeleteForRunsRequest, context: Any
    ) -> checkpoint_service_pb2.DeleteForRunsResponse:
        if request.run_ids:
            await self._store.lg_delete_for_runs(list(request.run_ids), namespace=scope.namespace())
        return pb.DeleteForRunsResponse()

    @unary
    async def CopyThreadCheckpoints(
        self, request: checkpoint_service_pb2.CopyThreadCheckpointsRequest, context: Any
    ) -> checkpoint_service_pb2.CopyThreadCheckpointsResponse:
        target = self._writable(request.target_thread_id, "target_thread_id")
        source = scope.thread_key(_required(request.source_thread_id, "source_thread_id"))
        await self._store.lg_copy_thread(source, target)
        return pb.CopyThreadCheckpointsResponse()

    @unary
    async def PruneCheckpoints(
        self, request: checkpoint_service_pb2.PruneCheckpointsRequest, context: Any
    ) -> checkpoint_service_pb2.PruneCheckpointsResponse:
        thread_ids = [self._writable(thread_id) for thread_id in request.thread_ids]
        strategy = request.strategy
        if strategy == thread_service_pb2.PRUNE_STRATEGY_KEEP_LATEST:
            await self._store.prune_checkpoints(thread_ids, keep_latest=1)
        elif strategy == thread_service_pb2.PRUNE_STRATEGY_DELETE:
            await self._store.delete_threads(thread_ids)
        else:
            raise error_for("INVALID_ARGUMENT", "strategy is required", field="strategy")
        return pb.PruneCheckpointsResponse()

    @unary
    async def GetCapabilities(
        self, request: checkpoint_service_pb2.GetCapabilitiesRequest, context: Any
    ) -> checkpoint_service_pb2.GetCapabilitiesResponse:
        return pb.GetCapabilitiesResponse(capabilities=CAPABILITIES)
