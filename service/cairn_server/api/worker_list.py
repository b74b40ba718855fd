"""WorkerService.ListWorkers: the workers connected to this replica, a page
at a time, for `cairn workers` and the SDKs' `list_workers()`."""

from __future__ import annotations

from collections.abc import Sequence

from cairn.v1 import worker_service_pb2 as pb
from cairn_server import namespaces
from cairn_server.api.threads import page_size
from cairn_server.dispatch.dispatcher import WorkerConnection
from cairn_server.domain import TaskKind
from cairn_server.errors import error_for

_KIND_PB = {TaskKind.TASK: pb.TASK_KIND_TASK, TaskKind.ENTRYPOINT: pb.TASK_KIND_ENTRYPOINT}


def list_workers(
    workers: Sequence[WorkerConnection], replica_id: str, request: pb.ListWorkersRequest
) -> pb.ListWorkersResponse:
    """One page of `workers` in the order they connected. A page token is
    the connection number of the last worker of the page before."""
    limit = page_size(request.page_size)
    after = _position(request.page_token)
    ordered = sorted((w for w in workers if w.serial > after), key=lambda w: w.serial)
    page = ordered[:limit]
    token = str(page[-1].serial) if len(ordered) > limit else ""
    return pb.ListWorkersResponse(
        workers=[_entry(worker, replica_id) for worker in page], next_page_token=token
    )


def _position(token: str) -> int:
    if not token:
        return 0
    if not token.isdigit() or len(token) > 18:
        raise error_for(
            "INVALID_ARGUMENT", "page_token is not one ListWorkers issued", field="page_token"
        )
    return int(token)


def _entry(worker: WorkerConnection, replica_id: str) -> pb.ConnectedWorker:
    return pb.ConnectedWorker(
        worker_id=worker.worker_id,
        replica_id=replica_id,
        sdk_language=worker.sdk_language,
        sdk_version=worker.sdk_version,
        identity=worker.identity,
        names=[
            *(
                pb.ServedName(name=namespaces.unscoped(name), kind=_KIND_PB[registration.kind])
                for name, registration in sorted(worker.registrations.items())
            ),
            *(pb.ServedName(name=graph, kind=pb.TASK_KIND_GRAPH) for graph in worker.graphs),
        ],
        max_concurrent_tasks=worker.max_tasks,
        free_task_slots=max(worker.max_tasks - worker.running[TaskKind.TASK], 0),
        max_concurrent_entrypoints=worker.max_entrypoints,
        free_entrypoint_slots=max(worker.max_entrypoints - worker.running[TaskKind.ENTRYPOINT], 0),
    )
