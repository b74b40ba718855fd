"""WorkerService: the bidirectional stream of each connected worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from google.protobuf import duration_pb2

from cairn.v1 import errors_pb2, run_pb2, worker_service_pb2, worker_service_pb2_grpc
from cairn_server import heap, namespaces
from cairn_server.api import convert
from cairn_server.api.errors import streaming, unary
from cairn_server.api.graphs import graph_model
from cairn_server.api.message_sizes import max_message_bytes
from cairn_server.api.relay import Relays
from cairn_server.api.values import check_size, to_json, to_value
from cairn_server.api.worker_frames import Framer, Shipped, Undeliverable, page_budget
from cairn_server.api.worker_list import list_workers
from cairn_server.auth import Caller, Role, audit, current
from cairn_server.dispatch.dispatcher import WorkerConnection
from cairn_server.dispatch.messages import (
    Assignment,
    CancelNotice,
    Forwarded,
    Outgoing,
    Registration,
    Rejected,
)
from cairn_server.domain import ErrorRecord, StreamMode, TaskKind, TaskTimeouts
from cairn_server.engine.decisions import Deliver
from cairn_server.errors import ServiceError, error_for
from cairn_server.ids import new_id
from cairn_server.logs import clip, ids
from cairn_server.runtime import inbox
from cairn_server.runtime.manager import RunManager

log = logging.getLogger(__name__)

# Reports that end a held task (or make a call it waits on): refused, the
# task fails instead of staying held.
_FINAL_REPORTS = ("completed", "failed", "interrupted", "sleeping", "schedule")
pb = worker_service_pb2

SERVER_VERSION = "0.1.0"
_CONNECT = "cairn.v1.WorkerService/Connect"
_KIND = {pb.TASK_KIND_TASK: TaskKind.TASK, pb.TASK_KIND_ENTRYPOINT: TaskKind.ENTRYPOINT}
_KIND_PB = {v: k for k, v in _KIND.items()}
_CHUNK_MODES = {
    run_pb2.STREAM_MODE_CUSTOM: StreamMode.CUSTOM,
    run_pb2.STREAM_MODE_MESSAGES: StreamMode.MESSAGES,
}


MAX_BATCH = 64
"""The most messages sent to a worker as one ConnectResponse."""


async def _ready(outbox: asyncio.Queue[Outgoing], limit: int) -> tuple[list[Any], bool]:
    """The next message of `outbox` and up to `limit - 1` more that are
    ready now, and whether the outbox ended (None) after them."""
    items: list[Any] = []
    item = await outbox.get()
    while item is not None:
        items.append(item)
        if len(items) >= limit or outbox.empty():
            return items, False
        item = outbox.get_nowait()
    return items, True


def outgoing_pb(
    item: Assignment | Deliver | CancelNotice | Rejected | Forwarded,
) -> pb.ConnectResponse:
    match item:
        case Forwarded(message):
            assert isinstance(message, pb.ConnectResponse)
            return message
        case Assignment():
            message = pb.TaskAssignment(
                task_id=item.task_id,
                name=item.name,
                kind=_KIND_PB[item.kind],
                run_id=item.run_id,
                thread_id=namespaces.unscoped(item.thread_id),
                namespace=namespaces.namespace_of(item.thread_id),
                checkpoint_id=item.checkpoint_id,
                attempt=item.attempt,
                input=to_value(item.input),
                path=list(item.path),
                first_fresh_call=item.first_fresh_call,
                announce_calls=item.announce_calls,
                stream_messages=item.stream_messages,
                resume=[to_value(v) for v in item.resume],
                timed_out=item.timed_out,
            )  # the journal is added by worker_frames.Framer, within the stream's limit
            if item.has_previous:
                to_value(item.previous, message.previous)
            if item.timeouts is not None:
                message.timeouts.CopyFrom(convert.task_timeouts_pb(item.timeouts))
            if item.has_heartbeat_details:
                to_value(item.heartbeat_details, message.heartbeat_details)
            if item.trace_context:
                message.trace_context.update(item.trace_context)
            return pb.ConnectResponse(assignment=message)
        case Deliver():
            outcome = pb.ChildOutcome(
                parent_task_id=item.parent_id, index=item.index, task_id=item.child_id
            )
            if item.has_result:
                to_value(item.result, outcome.result)
            elif item.error is not None:
                outcome.error.CopyFrom(convert.error_pb(item.error))
            elif item.interrupt is not None:
                outcome.interrupted.interrupt.CopyFrom(convert.interrupt_pb(item.interrupt))
            return pb.ConnectResponse(child_outcome=outcome)
        case CancelNotice():
            return pb.ConnectResponse(
                cancel=pb.CancelTask(task_id=item.task_id, reason=item.reason)
            )
        case Rejected(error):
            rejected = errors_pb2.RequestRejected(
                code=error.code, reason=error.reason, message=error.message, metadata=error.metadata
            )
            task_id = error.metadata.get("task_id", "")
            return pb.ConnectResponse(rejected=pb.Rejection(task_id=task_id, error=rejected))


def _check_may_serve(caller: Caller, name: str) -> None:
    if not caller.principal.may_serve(caller.namespace, name):
        raise error_for(
            "PERMISSION_DENIED",
            f"{caller.principal.name} may not serve {name!r} in namespace {caller.namespace!r}",
            name=name,
            namespace=caller.namespace,
        )


class WorkerServicer(worker_service_pb2_grpc.WorkerServiceServicer):
    def __init__(
        self,
        runs: RunManager,
        relays: Relays,
        *,
        max_payload_bytes: int,
        max_workers_per_namespace: int | None = None,
    ) -> None:
        self._runs = runs
        self._relays = relays
        self._limit = max_payload_bytes
        self._max_workers = max_workers_per_namespace

    @streaming
    async def Connect(
        self, request_iterator: AsyncIterator[pb.ConnectRequest], context: Any
    ) -> AsyncIterator[pb.ConnectResponse]:
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        if first is None or first.WhichOneof("kind") != "hello":
            raise error_for("HELLO_REQUIRED", "the first message of Connect must be a hello")
        caller = current()
        graphs = [
            graph_model(r.graph) for r in first.hello.registrations if r.kind == pb.TASK_KIND_GRAPH
        ]
        try:
            worker = self._worker(first.hello, caller)
            for graph in graphs if not worker.relay else ():
                _check_may_serve(caller, graph.name)
        except ServiceError as error:
            if error.code == "PERMISSION_DENIED":
                audit.denied(
                    caller=caller.principal.name,
                    namespace=caller.namespace,
                    method=_CONNECT,
                    code=error.code,
                    reason=error.reason,
                    message=error.message,
                    peer=context.peer() or "",
                )
            raise
        if graphs and not worker.relay:
            tasks = {
                namespaces.unscoped(n)
                for n, r in worker.registrations.items()
                if r.kind is TaskKind.TASK
            }
            await self._runs.register_graphs(graphs, tasks, namespace=caller.namespace)
            worker.graphs = tuple(sorted(graph.name for graph in graphs))
        await self._runs.register_targets(
            [n for n, r in worker.registrations.items() if r.kind is TaskKind.ENTRYPOINT]
        )
        yield pb.ConnectResponse(
            welcome=pb.Welcome(
                worker_id=worker.worker_id,
                server_version=SERVER_VERSION,
                max_payload_bytes=self._limit,
                accepts_batches=True,
                sends_journal_pages=worker.accepts_journal_pages,
            )
        )
        log.info(
            "worker %s connected (%s)",
            clip(worker.worker_id),
            clip(worker.identity),
            extra=ids(worker_id=worker.worker_id, namespace=worker.namespace),
        )
        self._runs.dispatcher.add(worker)
        reader = asyncio.ensure_future(self._read(worker, requests))
        framer = Framer(
            max_message=max_message_bytes(self._limit),
            budget=page_budget(self._limit),
            batches=worker.accepts_batches,
            pages=worker.accepts_journal_pages,
            to_pb=outgoing_pb,
        )
        try:
            while True:
                limit = MAX_BATCH if worker.accepts_batches else 1
                items, ended = await _ready(worker.outbox, limit)
                for frame in framer.frames(items):
                    if isinstance(frame, Undeliverable):
                        self._undeliverable(worker, frame)
                    elif isinstance(frame, Shipped):
                        self._shipped(worker, frame)
                    else:
                        yield frame
                del items
                if ended:
                    return
        finally:
            reader.cancel()
            lost = self._runs.dispatcher.remove(worker)
            log.info(
                "worker %s disconnected; %d tasks re-dispatched",
                clip(worker.worker_id),
                len(lost),
                extra=ids(worker_id=worker.worker_id, namespace=worker.namespace),
            )

    def _undeliverable(self, worker: WorkerConnection, frame: Undeliverable) -> None:
        """A message too large for the stream fails the task it is about
        (and so its run, unless a parent catches it), not the stream."""
        task_id, what = _about_task(frame.item)
        log.warning(
            "a %s for task %s is %d bytes, over the stream limit of %d; the task fails",
            what,
            task_id,
            frame.size,
            frame.limit,
            extra=ids(worker_id=worker.worker_id),
        )
        if not task_id:
            return
        held = self._runs.dispatcher.release(worker, task_id)
        if held is None:
            return  # withdrawn meanwhile
        if frame.started or what == "child outcome":
            worker.outbox.put_nowait(CancelNotice(task_id, f"its {what} could not be sent"))
        because = f" because of {frame.why}" if frame.why else ""
        failure = ErrorRecord(
            "MessageTooLargeError",
            f"the service could not send the task's {what} to its worker{because}: it is"
            f" {frame.size} bytes and a Connect stream message is at most {frame.limit} bytes"
            f" (2 * max_payload_bytes + 1 MiB, max_payload_bytes = {self._limit})",
            retryable=False,
        )
        if held.relay is not None:
            held.relay.failed(held, failure)
        else:
            self._post(held, inbox.Failed(task_id, failure))

    def _shipped(self, worker: WorkerConnection, frame: Shipped) -> None:
        """A large journal is on its way: the service's copy of it is the
        run's, and the memory that built its messages goes back to the
        system (glibc keeps it otherwise)."""
        held = self._runs.dispatcher.held_by(worker, frame.task_id)
        if held is not None:
            held.journal = ()  # a re-dispatch gets a fresh one from its run
        if frame.pages > 1:
            log.info(
                "sent task %s's journal in %d messages, %d bytes",
                frame.task_id,
                frame.pages,
                frame.size,
                extra=ids(worker_id=worker.worker_id),
            )
            heap.release_later()

    @unary
    async def ListWorkers(
        self, request: pb.ListWorkersRequest, context: Any
    ) -> pb.ListWorkersResponse:
        namespace = current().namespace
        workers = [w for w in self._runs.dispatcher.direct_workers() if w.namespace == namespace]
        return list_workers(workers, self._runs.replica_id, request)

    def _worker(self, hello: pb.WorkerHello, caller: Caller) -> WorkerConnection:
        relay = bool(hello.relay_replica_id)
        if relay and not caller.principal.allows(caller.namespace, Role.REPLICA):
            raise error_for(
                "PERMISSION_DENIED",
                "only another Cairn replica may connect as a relay (relay_replica_id);"
                f" {caller.principal.name} holds no replica grant",
                field="hello.relay_replica_id",
            )
        if not relay:
            if not caller.principal.allows(caller.namespace, Role.WORKER):
                raise error_for(
                    "PERMISSION_DENIED",
                    f"{caller.principal.name} holds no worker grant in namespace"
                    f" {caller.namespace!r}",
                    namespace=caller.namespace,
                )
            self._check_worker_room(caller.namespace)
        for field in ("max_concurrent_tasks", "max_concurrent_entrypoints"):
            if getattr(hello, field) < 0:
                raise error_for(
                    "INVALID_ARGUMENT",
                    f"hello.{field} must not be negative (0 takes the default)",
                    field=f"hello.{field}",
                )
        registrations: dict[str, Registration] = {}
        for item in hello.registrations:
            if item.kind == pb.TASK_KIND_GRAPH:
                continue  # the service runs graphs; their nodes are registered as tasks
            if not item.name or item.kind not in _KIND:
                raise error_for(
                    "INVALID_ARGUMENT", "each registration needs a name and a kind", field="hello"
                )
            policy = (
                convert.retry_policy(item.retry_policy) if item.HasField("retry_policy") else None
            )
            timeouts = (
                convert.task_timeouts(item.timeouts, "timeouts")
                if item.HasField("timeouts")
                else None
            )
            if relay:
                namespace = item.namespace or namespaces.DEFAULT
                if not caller.principal.allows(namespace, Role.REPLICA):
                    raise error_for(
                        "PERMISSION_DENIED",
                        f"{caller.principal.name} may not relay names of namespace"
                        f" {namespace!r}: its replica grant does not cover it",
                        namespace=namespace,
                    )
                key = namespaces.scoped(namespace, item.name)
            else:
                _check_may_serve(caller, item.name)
                key = namespaces.scoped(caller.namespace, item.name)
            registrations[key] = Registration(key, _KIND[item.kind], policy, timeouts)
        return WorkerConnection(
            worker_id=hello.worker_id or new_id(),
            registrations=registrations,
            max_tasks=hello.max_concurrent_tasks or 16,
            max_entrypoints=hello.max_concurrent_entrypoints or 256,
            identity=hello.identity,
            sdk_language=hello.sdk_language,
            sdk_version=hello.sdk_version,
            accepts_batches=hello.accepts_batches,
            accepts_journal_pages=hello.accepts_journal_pages,
            relay=relay,
            namespace="" if relay else caller.namespace,
        )

    def _check_worker_room(self, namespace: str) -> None:
        """TOO_MANY_WORKERS once the namespace has its limit of workers here."""
        limit = self._max_workers
        if limit is None:
            return
        connected = sum(w.namespace == namespace for w in self._runs.dispatcher.direct_workers())
        if connected >= limit:
            raise error_for(
                "TOO_MANY_WORKERS",
                f"namespace {namespace!r} has {connected} workers connected to this replica;"
                f" the limit is {limit}",
                namespace=namespace,
                limit=str(limit),
            )

    async def _read(
        self, worker: WorkerConnection, requests: AsyncIterator[pb.ConnectRequest]
    ) -> None:
        try:
            async for request in requests:
                if request.WhichOneof("kind") == "batch":
                    for item in request.batch.requests:
                        self._accept(worker, item)
                else:
                    self._accept(worker, request)
        except asyncio.CancelledError:
            raise
        except Exception:  # the stream broke; the writer side notices too
            log.debug("worker %s stream ended", clip(worker.worker_id), exc_info=True)
        worker.outbox.put_nowait(None)

    def _accept(self, worker: WorkerConnection, request: pb.ConnectRequest) -> None:
        if self._relays.forward(worker, request):
            return  # about a task of another replica's run: its owner checks it
        try:
            self._handle(worker, request)
        except ServiceError as error:
            worker.outbox.put_nowait(Rejected(error))
            self._fail_unreported(worker, request, error)

    def _fail_unreported(
        self, worker: WorkerConnection, request: pb.ConnectRequest, error: ServiceError
    ) -> None:
        """A task held by this worker whose outcome or call the service
        refused (too large, too deep, not JSON) fails, not retried, with the
        reason: its run would otherwise wait for a report that never comes.
        The worker is told to drop the task."""
        kind = request.WhichOneof("kind")
        if kind not in _FINAL_REPORTS or error.reason == "TASK_NOT_HELD":
            return
        message = getattr(request, kind)
        task_id = message.parent_task_id if kind == "schedule" else message.task_id
        held = self._runs.dispatcher.release(worker, task_id)
        if held is None:
            return
        worker.outbox.put_nowait(CancelNotice(task_id, f"its {kind} report was refused"))
        words = error.reason.lower().split("_")
        failure = ErrorRecord(
            "".join(w.capitalize() for w in words) + "Error",
            f"the service refused the task's {kind} report: {error.message}",
            retryable=False,
        )
        self._post(held, inbox.Failed(task_id, failure))

    def _held(self, worker: WorkerConnection, task_id: str, *, release: bool) -> Assignment:
        dispatcher = self._runs.dispatcher
        assignment = (dispatcher.release if release else dispatcher.held_by)(worker, task_id)
        if assignment is None:
            raise error_for(
                "TASK_NOT_HELD", f"this worker does not hold task {task_id!r}", task_id=task_id
            )
        return assignment

    def _handle(self, worker: WorkerConnection, request: pb.ConnectRequest) -> None:
        kind = request.WhichOneof("kind")
        handlers: dict[str, Callable[[WorkerConnection, Any], None]] = {
            "completed": self._completed,
            "failed": self._failed,
            "interrupted": self._interrupted,
            "suspended": self._suspended,
            "sleeping": self._sleeping,
            "schedule": self._schedule,
            "chunk": self._chunk,
            "heartbeat": self._heartbeat,
        }
        handler = handlers.get(kind or "")
        if handler is None:
            raise error_for("INVALID_ARGUMENT", f"unexpected {kind} message on a worker stream")
        handler(worker, getattr(request, kind or ""))

    def _completed(self, worker: WorkerConnection, message: pb.TaskCompleted) -> None:
        self._check(message.ByteSize(), message.task_id)
        result = self._json(message.result, message.task_id, "result")
        has_save = message.HasField("save")
        save = self._json(message.save, message.task_id, "save") if has_save else None
        held = self._held(worker, message.task_id, release=True)
        self._post(held, inbox.Completed(message.task_id, result, has_save, save))

    def _failed(self, worker: WorkerConnection, message: pb.TaskFailed) -> None:
        self._check(message.ByteSize(), message.task_id)
        error = convert.error_record(message.error)
        held = self._held(worker, message.task_id, release=True)
        self._post(held, inbox.Failed(message.task_id, error))

    def _interrupted(self, worker: WorkerConnection, message: pb.TaskInterrupted) -> None:
        self._check(message.ByteSize(), message.task_id)
        if message.index < 0:
            raise error_for(
                "INVALID_ARGUMENT",
                f"an interrupt's index must be >= 0, got {message.index}",
                task_id=message.task_id,
                field="index",
            )
        value = self._json(message.value, message.task_id, "value")
        timeout = None
        if message.HasField("timeout"):
            timeout = self._seconds(message.timeout, message.task_id, "timeout")
        has_default = message.HasField("timeout_default")
        default = None
        if has_default:
            default = self._json(message.timeout_default, message.task_id, "timeout_default")
        held = self._held(worker, message.task_id, release=True)
        interrupted = inbox.Interrupted(
            message.task_id, message.index, value, timeout, has_default, default
        )
        self._post(held, interrupted)

    def _suspended(self, worker: WorkerConnection, message: pb.TaskSuspended) -> None:
        held = self._held(worker, message.task_id, release=True)
        self._post(held, inbox.Suspended(message.task_id))

    def _sleeping(self, worker: WorkerConnection, message: pb.TaskSleeping) -> None:
        task_id = message.task_id
        if message.index < 0:
            raise error_for(
                "INVALID_ARGUMENT",
                f"a sleep's index must be >= 0, got {message.index}",
                task_id=task_id,
                field="index",
            )
        due = message.WhichOneof("due")
        if due == "sleep_duration":
            duration = self._seconds(message.sleep_duration, task_id, "sleep_duration")
            sleeping = inbox.Sleeping(task_id, message.index, duration=duration)
        elif due == "wake_time":
            with _about(task_id):
                wake_time = convert.time_of(message.wake_time, "wake_time")
            sleeping = inbox.Sleeping(task_id, message.index, wake_time=wake_time)
        else:
            raise error_for(
                "INVALID_ARGUMENT",
                "a sleep needs a sleep_duration or a wake_time",
                task_id=task_id,
                field="due",
            )
        held = self._held(worker, task_id, release=True)
        self._post(held, sleeping)

    def _seconds(self, duration: duration_pb2.Duration, task_id: str, field: str) -> float:
        """A timer's duration: valid, and ending where a Timestamp can say."""
        with _about(task_id):
            seconds = convert.seconds(duration, 0.0, field)
        if not convert.is_timestamp(self._runs.timer_clock() + seconds):
            raise error_for(
                "INVALID_ARGUMENT",
                f"{field} ends after the year 9999",
                task_id=task_id,
                field=field,
            )
        return seconds

    def _schedule(self, worker: WorkerConnection, message: pb.ScheduleTask) -> None:
        task_id = message.parent_task_id
        self._check(message.ByteSize(), task_id)
        value = self._json(message.input, task_id, "input")
        if not message.name or message.index < 0:
            raise error_for(
                "INVALID_ARGUMENT", "a call needs a name and an index >= 0", task_id=task_id
            )
        held = self._held(worker, task_id, release=False)
        policy = (
            convert.retry_policy(message.retry_policy)
            if message.HasField("retry_policy")
            else self._runs.dispatcher.retry_policy(namespaces.beside(held.thread_id, message.name))
        )
        timeouts = None
        if message.HasField("timeouts"):
            timeouts = self._timeouts(message.timeouts, task_id)
        local = self._local_run(worker, message, held) if message.HasField("local") else None
        scheduled = inbox.Scheduled(
            task_id, message.index, message.name, value, policy, local, timeouts
        )
        self._post(held, scheduled)

    def _heartbeat(self, worker: WorkerConnection, message: pb.TaskHeartbeat) -> None:
        self._check(message.ByteSize(), message.task_id)
        has_details = message.HasField("details")
        details = self._json(message.details, message.task_id, "details") if has_details else None
        held = self._runs.dispatcher.heartbeat(worker, message.task_id)
        if held is None:
            raise error_for(
                "TASK_NOT_HELD",
                f"this worker does not hold task {message.task_id!r}",
                task_id=message.task_id,
            )
        if has_details and not held.local:  # a local call has no next attempt to hand them
            self._runs.post(held.run_id, inbox.HeartbeatDetails(message.task_id, details))

    @staticmethod
    def _timeouts(message: run_pb2.TaskTimeouts, task_id: str) -> TaskTimeouts:
        with _about(task_id):
            return convert.task_timeouts(message, "timeouts")

    def _post(
        self,
        held: Assignment,
        message: inbox.Scheduled
        | inbox.Completed
        | inbox.Failed
        | inbox.Interrupted
        | inbox.Sleeping
        | inbox.Suspended
        | inbox.Chunk,
    ) -> None:
        """Post a message about (or from) the held task to its run."""
        if held.local:
            self._runs.post(held.run_id, inbox.FromLocalCopy(held.task_id, message))
        else:
            self._runs.post(held.run_id, message)

    def _local_run(
        self, worker: WorkerConnection, message: pb.ScheduleTask, parent: Assignment
    ) -> inbox.LocalRun | None:
        """What a ScheduleTask says about running the call locally; a running
        copy is held for this worker now, before its next messages arrive.
        None (the call goes on as a plain one) when that copy cannot be held:
        it is cancelled."""
        route = namespaces.beside(parent.thread_id, message.name)
        registration = worker.registrations.get(route)
        if registration is None or registration.kind is not TaskKind.TASK:
            raise error_for(
                "INVALID_ARGUMENT",
                f"only a task this worker serves runs locally, not {message.name!r}",
                task_id=message.parent_task_id,
            )
        kind = message.WhichOneof("local")
        if kind == "local_result":
            result = self._json(message.local_result, message.parent_task_id, "local_result")
            return inbox.LocalRun(has_result=True, result=result)
        if kind == "local_error":
            return inbox.LocalRun(error=convert.error_record(message.local_error))
        if not self._runs.dispatcher.hold_local_call(worker, parent, message.index, message.name):
            return None
        return inbox.LocalRun()

    def _chunk(self, worker: WorkerConnection, message: pb.TaskStreamChunk) -> None:
        self._check(message.ByteSize(), message.task_id)
        mode = _CHUNK_MODES.get(message.mode)
        if mode is None:
            raise error_for(
                "INVALID_ARGUMENT", "chunks are custom or messages data", task_id=message.task_id
            )
        data = self._json(message.data, message.task_id, "data")
        held = self._held(worker, message.task_id, release=False)
        self._post(held, inbox.Chunk(message.task_id, mode, data))

    def _check(self, size: int, task_id: str) -> None:
        try:
            check_size(size, self._limit, "message")
        except ServiceError as error:
            error.metadata["task_id"] = task_id
            raise

    @staticmethod
    def _json(value: Any, task_id: str, field: str) -> Any:
        with _about(task_id):
            return to_json(value, field)


def _about_task(item: object) -> tuple[str, str]:
    """The held task a worker message is about, and what kind it is."""
    match item:
        case Assignment():
            return item.task_id, "assignment"
        case Deliver():
            return item.parent_id, "child outcome"
        case Forwarded(message) if isinstance(message, pb.ConnectResponse):
            if message.WhichOneof("kind") == "child_outcome":
                return message.child_outcome.parent_task_id, "child outcome"
    return "", type(item).__name__


@contextlib.contextmanager
def _about(task_id: str) -> Iterator[None]:
    """A refusal raised inside names the task the report was about (its
    Rejection's task_id)."""
    try:
        yield
    except ServiceError as error:
        error.metadata["task_id"] = task_id
        raise
