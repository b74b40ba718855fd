"""ThreadService."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from cairn.v1 import thread_pb2, thread_service_pb2, thread_service_pb2_grpc
from cairn_server import namespaces
from cairn_server.api import convert, scope, state_pages
from cairn_server.api.errors import unary
from cairn_server.api.message_sizes import FIELD_OVERHEAD
from cairn_server.api.values import check_size, struct_to_json, to_json
from cairn_server.domain import CheckpointRecord, ThreadRecord, ThreadStatus
from cairn_server.engine.state import StateView
from cairn_server.errors import error_for
from cairn_server.ids import derive_id, new_id
from cairn_server.runtime.manager import RunManager
from cairn_server.store import ThreadAlreadyExists

MAX_PAGE = 1000
MAX_PRUNE = 1000
DEFAULT_PAGE = 50

pb = thread_service_pb2


@contextlib.contextmanager
def page_token_errors() -> Iterator[None]:
    """The store rejects a page token it did not issue with ValueError."""
    try:
        yield
    except ValueError as error:
        raise error_for(
            "INVALID_ARGUMENT", f"page_token is not valid: {error}", field="page_token"
        ) from None


def page_size(requested: int) -> int:
    if requested < 0:
        raise error_for("INVALID_ARGUMENT", "page_size must not be negative", field="page_size")
    return min(requested or DEFAULT_PAGE, MAX_PAGE)


class ThreadServicer(thread_service_pb2_grpc.ThreadServiceServicer):
    def __init__(self, runs: RunManager, *, max_payload_bytes: int) -> None:
        self._runs = runs
        self._limit = max_payload_bytes
        self._budget = state_pages.response_budget(max_payload_bytes)
        self._store = runs.store

    async def _thread(self, thread_id: str) -> ThreadRecord:
        """The caller's thread `thread_id` (its record holds the scoped key)."""
        if not thread_id:
            raise error_for("INVALID_ARGUMENT", "thread_id is required", field="thread_id")
        thread = await self._store.get_thread(scope.thread_key(thread_id))
        if thread is None:
            raise error_for(
                "THREAD_NOT_FOUND", f"thread {thread_id!r} does not exist", thread_id=thread_id
            )
        return thread

    @unary
    async def CreateThread(
        self, request: pb.CreateThreadRequest, context: Any
    ) -> pb.CreateThreadResponse:
        thread_id = request.thread_id
        if not thread_id:
            # A retry without an id derives the same id from its request_id.
            thread_id = derive_id("thread", request.request_id) if request.request_id else new_id()
        now = self._runs.clock()
        check_size(request.metadata.ByteSize(), self._limit, "metadata")
        metadata = struct_to_json(request.metadata, "metadata")
        thread = ThreadRecord(
            scope.thread_key(thread_id), now, now, metadata, ThreadStatus.IDLE, request.request_id
        )
        try:
            await self._store.create_thread(thread)
        except ThreadAlreadyExists:
            existing = await self._thread(thread_id)
            if request.request_id and existing.request_id == request.request_id:
                return pb.CreateThreadResponse(thread=convert.thread_pb(existing))
            raise error_for(
                "THREAD_ALREADY_EXISTS", f"thread {thread_id!r} already exists", thread_id=thread_id
            ) from None
        return pb.CreateThreadResponse(thread=convert.thread_pb(thread))

    @unary
    async def GetThread(self, request: pb.GetThreadRequest, context: Any) -> pb.GetThreadResponse:
        return pb.GetThreadResponse(thread=convert.thread_pb(await self._thread(request.thread_id)))

    @unary
    async def ListThreads(
        self, request: pb.ListThreadsRequest, context: Any
    ) -> pb.ListThreadsResponse:
        status = None
        if request.status != thread_pb2.THREAD_STATUS_UNSPECIFIED:
            status = convert.enum_value(convert.THREAD_STATUS, request.status, "status")
        with page_token_errors():
            threads, token = await self._store.list_threads(
                limit=page_size(request.page_size),
                page_token=request.page_token,
                metadata=struct_to_json(request.metadata, "metadata") or None,
                status=status,
                namespace=scope.namespace(),
            )
        return pb.ListThreadsResponse(
            threads=[convert.thread_pb(t) for t in threads], next_page_token=token
        )

    @unary
    async def DeleteThread(
        self, request: pb.DeleteThreadRequest, context: Any
    ) -> pb.DeleteThreadResponse:
        thread = await self._thread(request.thread_id)
        if self._runs.thread_is_busy(thread.thread_id):
            raise error_for(
                "THREAD_BUSY",
                f"thread {request.thread_id!r} has an active run",
                thread_id=request.thread_id,
            )
        await self._store.delete_thread(thread.thread_id)
        return pb.DeleteThreadResponse()

    @unary
    async def PruneThreads(
        self, request: pb.PruneThreadsRequest, context: Any
    ) -> pb.PruneThreadsResponse:
        thread_ids = list(request.thread_ids)
        if not thread_ids:
            raise error_for(
                "INVALID_ARGUMENT", "thread_ids must name at least one thread", field="thread_ids"
            )
        if len(thread_ids) > MAX_PRUNE:
            raise error_for(
                "INVALID_ARGUMENT",
                f"at most {MAX_PRUNE} thread_ids per call, got {len(thread_ids)}",
                field="thread_ids",
            )
        if not all(thread_ids):
            raise error_for(
                "INVALID_ARGUMENT", "thread_ids must not contain an empty id", field="thread_ids"
            )
        if request.keep_latest < 0:
            raise error_for(
                "INVALID_ARGUMENT", "keep_latest must not be negative", field="keep_latest"
            )
        if request.strategy == pb.PRUNE_STRATEGY_DELETE and request.keep_latest:
            raise error_for(
                "INVALID_ARGUMENT",
                "keep_latest applies only to PRUNE_STRATEGY_KEEP_LATEST",
                field="keep_latest",
            )
        if request.strategy not in (pb.PRUNE_STRATEGY_KEEP_LATEST, pb.PRUNE_STRATEGY_DELETE):
            raise error_for(
                "INVALID_ARGUMENT",
                f"strategy must be PRUNE_STRATEGY_KEEP_LATEST or PRUNE_STRATEGY_DELETE,"
                f" got {request.strategy}",
                field="strategy",
            )
        keys = [scope.thread_key(thread_id) for thread_id in thread_ids]
        for thread_id, key in zip(thread_ids, keys, strict=True):
            if self._runs.thread_is_busy(key):
                raise error_for(
                    "THREAD_BUSY", f"thread {thread_id!r} has an active run", thread_id=thread_id
                )
        if request.strategy == pb.PRUNE_STRATEGY_DELETE:
            result = await self._store.delete_threads(keys)
        else:
            result = await self._store.prune_checkpoints(keys, keep_latest=request.keep_latest or 1)
        return pb.PruneThreadsResponse(
            thread_ids=[namespaces.unscoped(key) for key in result.thread_ids],
            deleted_checkpoints=result.deleted_checkpoints,
        )

    @unary
    async def GetState(self, request: pb.GetStateRequest, context: Any) -> pb.GetStateResponse:
        checkpoint_id, first_task = request.checkpoint_id, 0
        if request.tasks_page_token:
            page = state_pages.parse_tasks_token(request.tasks_page_token, checkpoint_id)
            checkpoint_id, first_task = page.checkpoint_id, page.first_task
        thread = await self._thread(request.thread_id)
        checkpoint = await self._store.get_checkpoint(thread.thread_id, "", checkpoint_id or None)
        if checkpoint is None and checkpoint_id:
            raise error_for(
                "CHECKPOINT_NOT_FOUND",
                f"thread {request.thread_id!r} has no checkpoint {checkpoint_id!r}",
                thread_id=request.thread_id,
                checkpoint_id=checkpoint_id,
            )
        snapshot = await self._snapshot(checkpoint, first_task=first_task)
        return pb.GetStateResponse(state=snapshot)

    @unary
    async def GetStateHistory(
        self, request: pb.GetStateHistoryRequest, context: Any
    ) -> pb.GetStateHistoryResponse:
        thread = await self._thread(request.thread_id)
        if request.limit < 0:
            raise error_for("INVALID_ARGUMENT", "limit must not be negative", field="limit")
        before, returned = request.before or None, 0
        if request.page_token:
            page = state_pages.parse_history_token(request.page_token)
            before, returned = page.before, page.returned
        limit = request.limit - returned if request.limit else None
        if limit is not None and limit <= 0:
            return pb.GetStateHistoryResponse()
        listed = await self._store.list_checkpoints(
            thread.thread_id,
            "",
            before=before,
            limit=limit,
            metadata=struct_to_json(request.filter, "filter") or None,
        )
        response = pb.GetStateHistoryResponse()
        room = self._budget
        for checkpoint in listed:
            snapshot = await self._snapshot(checkpoint, budget=room)
            size = snapshot.ByteSize() + FIELD_OVERHEAD
            if response.states and size > room:
                last = response.states[-1].config.checkpoint_id
                response.next_page_token = state_pages.history_token(
                    returned + len(response.states), last
                )
                break
            response.states.append(snapshot)
            room -= size
        return response

    @unary
    async def UpdateState(
        self, request: pb.UpdateStateRequest, context: Any
    ) -> pb.UpdateStateResponse:
        check_size(request.values.ByteSize(), self._limit, "values")
        values = to_json(request.values, "values")
        thread = await self._thread(request.thread_id)
        checkpoint = await self._runs.update_state(
            thread.thread_id, request.checkpoint_id, values, request.as_node
        )
        return pb.UpdateStateResponse(state=await self._snapshot(checkpoint))

    async def _snapshot(
        self, checkpoint: CheckpointRecord | None, *, first_task: int = 0, budget: int = 0
    ) -> thread_pb2.StateSnapshot:
        """The snapshot of `checkpoint` with its tasks from `first_task` on,
        as many as fit `budget` (the response budget by default)."""
        if checkpoint is None:
            return convert.state_pb(StateView(None))[0]
        view = await self._runs.state_view(checkpoint)
        snapshot, more = convert.state_pb(
            view, first_task=first_task, budget=budget or self._budget
        )
        if more is not None:
            token = state_pages.tasks_token(checkpoint.checkpoint_id, more)
            snapshot.next_tasks_page_token = token
        return snapshot
