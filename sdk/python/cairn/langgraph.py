"""Cairn as the checkpointer of an existing LangGraph application.

Needs the `langgraph` extra (`pip install cairn[langgraph]`). The saver talks
to CheckpointService; values are serialized here by LangGraph's serializer and
the service stores them as they are.

A failed call raises the SDK's typed errors, not `grpc.RpcError`:
`cairn.CairnError` subclasses with the service's ErrorInfo `reason` and
`metadata` (e.g. `cairn.InvalidArgumentError` for an empty thread_id),
`cairn.UnavailableError` when the server cannot be reached.

A call whose server is unavailable (restarting, or one replica of several
gone) is tried again as the Client does: on the next address, with a short
pause after each round, for up to `failover_timeout` seconds. Every
CheckpointService call is safe to send twice (writes keep the first value
stored, deletes and prunes are idempotent), so each is retried.

Example::

    from cairn.langgraph import CairnSaver

    with CairnSaver("127.0.0.1:50051") as checkpointer:
        graph = builder.compile(checkpointer=checkpointer)
        graph.invoke({"topic": "cats"}, {"configurable": {"thread_id": "1"}})

Credentials, namespace and TLS are taken as by `cairn.Client` (or from the
CAIRN_* environment variables)::

    CairnSaver("cairn.internal:50051", api_key=key, namespace="team-a", tls=True)

`CairnStore` is the long-term memory store (LangGraph's BaseStore) on the
same service, so that an app moves all of its persistence to Cairn::

    with CairnSaver(address) as saver, CairnStore(address) as store:
        graph = builder.compile(checkpointer=saver, store=store)
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from cairn._addresses import Addresses, parse_addresses
from cairn._credentials import ConnectionSettings, TlsConfig
from cairn._failover_calls import ClosesCalls, FailoverCalls
from cairn._langgraph_store import CairnStore
from cairn.v1 import checkpoint_service_pb2 as pb
from cairn.v1 import checkpoint_service_pb2_grpc, thread_service_pb2

__all__ = ["CairnSaver", "CairnStore"]

_EMPTY = "empty"
"""Type of a blob for a channel that has no value at its version."""

_MAX_PAGE_SIZE = 1000
"""The largest page ListCheckpoints serves."""

log = logging.getLogger("cairn.langgraph")

_Stub = checkpoint_service_pb2_grpc.CheckpointServiceStub


class CairnSaver(ClosesCalls, BaseCheckpointSaver[str]):
    """A LangGraph checkpoint saver backed by a Cairn server.

    Sync methods use a blocking gRPC channel, async methods an asyncio one
    (opened on first use in the running loop). Close with `close()` /
    `aclose()` or use the saver as a (async) context manager.

    `address` is one server or several replicas of one service (a sequence
    or a comma-separated string). A call whose server is unavailable is
    retried on the next address for up to `failover_timeout` seconds, as
    `cairn.Client` does, so a graph rides out a restart of the server.

    `list()` / `alist()` fetch `page_size` checkpoints per call (0 for the
    server's default, 100), the next page only when the previous one has been
    consumed; `limit` caps the total over all pages::

        saver = CairnSaver("127.0.0.1:50051", page_size=500)
        for item in saver.list({"configurable": {"thread_id": "1"}}, limit=2000):
            ...  # at most 4 calls, each made when the page before is used up

    `token` (a JWT) or `api_key`, `namespace` and `tls` are taken as by
    `cairn.Client` (each from its CAIRN_* environment variable when not
    given) and sent on every call, sync and async; the checkpoints are those
    of that namespace. Writes need the `writer` role there::

        saver = CairnSaver(
            "cairn.internal:50051",
            token=os.environ["MY_JWT"],
            namespace="team-a",
            tls=TlsConfig(ca_file="ca.pem"),  # from cairn import TlsConfig
        )
    """

    def __init__(
        self,
        address: Addresses = "127.0.0.1:50051",
        *,
        serde: SerializerProtocol | None = None,
        page_size: int = 0,
        failover_timeout: float = 30.0,
        token: str | None = None,
        api_key: str | None = None,
        namespace: str | None = None,
        tls: bool | TlsConfig | None = None,
    ) -> None:
        super().__init__(serde=serde)
        if not 0 <= page_size <= _MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 0 and {_MAX_PAGE_SIZE}, not {page_size}")
        self.addresses = parse_addresses(address)
        self._settings = ConnectionSettings.resolve(
            token=token, api_key=api_key, namespace=namespace, tls=tls
        )
        self.namespace = self._settings.namespace
        self.address = ",".join(self.addresses)
        self.page_size = page_size
        self.failover_timeout = failover_timeout
        self._calls = FailoverCalls(_Stub, self._settings, self.addresses, failover_timeout, log)

    # --- requests and responses --------------------------------------------

    def _typed(self, value: Any) -> pb.TypedValue:
        kind, data = self.serde.dumps_typed(value)
        return pb.TypedValue(type=kind, data=data)

    def _load(self, value: pb.TypedValue) -> Any:
        return self.serde.loads_typed((value.type, value.data))

    def _get_request(self, config: RunnableConfig) -> pb.GetTupleRequest:
        configurable = config.get("configurable", {})
        return pb.GetTupleRequest(
            thread_id=str(configurable["thread_id"]),
            checkpoint_ns=configurable.get("checkpoint_ns", ""),
            checkpoint_id=get_checkpoint_id(config) or "",
        )

    def _list_request(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> pb.ListCheckpointsRequest:
        request = pb.ListCheckpointsRequest(
            filter_json=json.dumps(filter) if filter else "",
            limit=limit or 0,
            page_size=self.page_size,
        )
        if config is not None:
            configurable = config.get("configurable", {})
            if "thread_id" in configurable:
                request.thread_id = str(configurable["thread_id"])
            if "checkpoint_ns" in configurable:
                request.checkpoint_ns = configurable["checkpoint_ns"]
            checkpoint_id = get_checkpoint_id(config)
            if checkpoint_id:
                request.checkpoint_id = checkpoint_id
        if before is not None:
            before_id = get_checkpoint_id(before)
            if before_id:
                request.before_checkpoint_id = before_id
        return request

    def _tuple(self, saved: pb.SavedCheckpoint) -> CheckpointTuple:
        body = self._load(saved.checkpoint)
        body["channel_values"] = {
            blob.channel: self._load(blob.value)
            for blob in saved.blobs
            if blob.value.type != _EMPTY
        }
        ns = saved.checkpoint_ns
        parent = None
        if saved.parent_checkpoint_id:
            parent = {
                "configurable": {
                    "thread_id": saved.thread_id,
                    "checkpoint_ns": ns,
                    "checkpoint_id": saved.parent_checkpoint_id,
                }
            }
        return CheckpointTuple(
            config={
                "configurable": {
                    "thread_id": saved.thread_id,
                    "checkpoint_ns": ns,
                    "checkpoint_id": saved.checkpoint_id,
                }
            },
            checkpoint=body,
            metadata=json.loads(saved.metadata_json),
            parent_config=parent,  # type: ignore[arg-type]
            pending_writes=[
                (w.task_id, w.channel, self._load(w.value)) for w in saved.pending_writes
            ],
        )

    def _put_request(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> tuple[pb.PutCheckpointRequest, RunnableConfig]:
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        ns = configurable.get("checkpoint_ns", "")
        body = {k: v for k, v in checkpoint.items() if k != "channel_values"}
        values = checkpoint["channel_values"]
        blobs = [
            pb.SavedBlob(
                channel=channel,
                version=str(version),
                value=self._typed(values[channel])
                if channel in values
                else pb.TypedValue(type=_EMPTY),
            )
            for channel, version in new_versions.items()
        ]
        request = pb.PutCheckpointRequest(
            thread_id=thread_id,
            checkpoint_ns=ns,
            checkpoint_id=checkpoint["id"],
            parent_checkpoint_id=configurable.get("checkpoint_id") or "",
            checkpoint=self._typed(body),
            metadata_json=json.dumps(get_serializable_checkpoint_metadata(config, metadata)),
            channel_versions={k: str(v) for k, v in checkpoint["channel_versions"].items()},
            blobs=blobs,
        )
        stored: RunnableConfig = {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
            }
        }
        return request, stored

    def _writes_request(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> pb.PutWritesRequest:
        configurable = config["configurable"]
        return pb.PutWritesRequest(
            thread_id=str(configurable["thread_id"]),
            checkpoint_ns=configurable.get("checkpoint_ns", ""),
            checkpoint_id=configurable["checkpoint_id"],
            writes=[
                pb.SavedWrite(
                    task_id=task_id,
                    task_path=task_path,
                    idx=WRITES_IDX_MAP.get(channel, idx),
                    channel=channel,
                    value=self._typed(value),
                )
                for idx, (channel, value) in enumerate(writes)
            ],
        )

    @staticmethod
    def _prune_request(thread_ids: Sequence[str], strategy: str) -> pb.PruneCheckpointsRequest:
        strategies = {
            "keep_latest": thread_service_pb2.PRUNE_STRATEGY_KEEP_LATEST,
            "delete": thread_service_pb2.PRUNE_STRATEGY_DELETE,
        }
        if strategy not in strategies:
            raise ValueError(f"unknown prune strategy {strategy!r}; use keep_latest or delete")
        return pb.PruneCheckpointsRequest(
            thread_ids=list(thread_ids), strategy=strategies[strategy]
        )

    # --- sync -------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        response = self._calls.call(lambda stub: stub.GetTuple(self._get_request(config)))
        return self._tuple(response.checkpoint) if response.HasField("checkpoint") else None

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        if limit is not None and limit <= 0:  # as LangGraph's own savers: nothing
            return
        request = self._list_request(config, filter, before, limit)
        left = limit
        while True:
            response = self._calls.call(lambda stub: stub.ListCheckpoints(request))
            for saved in response.checkpoints:
                yield self._tuple(saved)
                if left is not None:
                    left -= 1
                    if left == 0:
                        return
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        request, stored = self._put_request(config, checkpoint, metadata, new_versions)
        self._calls.call(lambda stub: stub.PutCheckpoint(request))
        return stored

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        request = self._writes_request(config, writes, task_id, task_path)
        self._calls.call(lambda stub: stub.PutWrites(request))

    def delete_thread(self, thread_id: str) -> None:
        self._calls.call(
            lambda stub: stub.DeleteThreadCheckpoints(
                pb.DeleteThreadCheckpointsRequest(thread_id=thread_id)
            )
        )

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._calls.call(
            lambda stub: stub.DeleteForRuns(pb.DeleteForRunsRequest(run_ids=list(run_ids)))
        )

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._calls.call(
            lambda stub: stub.CopyThreadCheckpoints(
                pb.CopyThreadCheckpointsRequest(
                    source_thread_id=source_thread_id, target_thread_id=target_thread_id
                )
            )
        )

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._calls.call(
            lambda stub: stub.PruneCheckpoints(self._prune_request(thread_ids, strategy))
        )

    # --- async ------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        response = await self._calls.acall(lambda stub: stub.GetTuple(self._get_request(config)))
        return self._tuple(response.checkpoint) if response.HasField("checkpoint") else None

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        if limit is not None and limit <= 0:
            return
        request = self._list_request(config, filter, before, limit)
        left = limit
        while True:
            response = await self._calls.acall(lambda stub: stub.ListCheckpoints(request))
            for saved in response.checkpoints:
                yield self._tuple(saved)
                if left is not None:
                    left -= 1
                    if left == 0:
                        return
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        request, stored = self._put_request(config, checkpoint, metadata, new_versions)
        await self._calls.acall(lambda stub: stub.PutCheckpoint(request))
        return stored

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        request = self._writes_request(config, writes, task_id, task_path)
        await self._calls.acall(lambda stub: stub.PutWrites(request))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._calls.acall(
            lambda stub: stub.DeleteThreadCheckpoints(
                pb.DeleteThreadCheckpointsRequest(thread_id=thread_id)
            )
        )

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self._calls.acall(
            lambda stub: stub.DeleteForRuns(pb.DeleteForRunsRequest(run_ids=list(run_ids)))
        )

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._calls.acall(
            lambda stub: stub.CopyThreadCheckpoints(
                pb.CopyThreadCheckpointsRequest(
                    source_thread_id=source_thread_id, target_thread_id=target_thread_id
                )
            )
        )

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self._calls.acall(
            lambda stub: stub.PruneCheckpoints(self._prune_request(thread_ids, strategy))
        )

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Versions are text that sorts by age, with a random fraction as in
        LangGraph's own savers: values are stored once per (channel, version),
        so two branches forked from one checkpoint must not reuse a version."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(str(current).split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"
