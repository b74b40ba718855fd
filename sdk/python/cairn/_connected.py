"""ConnectedWorker: a worker as `Client.list_workers()` reports it."""

from __future__ import annotations

from dataclasses import dataclass

from cairn.v1 import worker_service_pb2 as pb


@dataclass(frozen=True, slots=True)
class ConnectedWorker:
    """One worker's stream to the server that answered `list_workers()`.

    `max_concurrency` and `max_entrypoints` are the worker's limits (as given
    to `Worker`); the free slots are what that server has not assigned of
    them now."""

    worker_id: str
    replica_id: str
    sdk_language: str
    sdk_version: str
    identity: str
    tasks: tuple[str, ...]
    entrypoints: tuple[str, ...]
    max_concurrency: int
    free_task_slots: int
    max_entrypoints: int
    free_entrypoint_slots: int
    graphs: tuple[str, ...] = ()
    """The graphs it serves (their nodes and routers are among `tasks`)."""

    @classmethod
    def _from_proto(cls, message: pb.ConnectedWorker) -> ConnectedWorker:
        def named(kind: pb.TaskKind.ValueType) -> tuple[str, ...]:
            return tuple(n.name for n in message.names if n.kind == kind)

        return cls(
            worker_id=message.worker_id,
            replica_id=message.replica_id,
            sdk_language=message.sdk_language,
            sdk_version=message.sdk_version,
            identity=message.identity,
            tasks=named(pb.TASK_KIND_TASK),
            entrypoints=named(pb.TASK_KIND_ENTRYPOINT),
            max_concurrency=message.max_concurrent_tasks,
            free_task_slots=message.free_task_slots,
            max_entrypoints=message.max_concurrent_entrypoints,
            free_entrypoint_slots=message.free_entrypoint_slots,
            graphs=named(pb.TASK_KIND_GRAPH),
        )
