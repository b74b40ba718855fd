"""Worker: serves tasks, entrypoints and graphs to the Cairn service.

    worker = Worker("127.0.0.1:50051", functions=[write_essay, workflow, graph])
    await worker.run()          # or worker.run_sync() in a script

    # several replicas of one service: a stream to each
    worker = Worker("10.0.0.1:50051,10.0.0.2:50051", functions=[...])

    # credentials, namespace and TLS (or the CAIRN_* environment variables)
    worker = Worker(address, functions=[...], api_key=key, namespace="team-a", tls=True)

The worker keeps one Connect stream open to each address, each reconnecting
with backoff when it drops; a service re-dispatches whatever the worker held
when its stream broke. Each service bounds what it sends on one stream
(max_concurrency), and the worker bounds all of them together.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import random
import signal
import socket
import traceback
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import grpc

from cairn import _tracing
from cairn._addresses import Addresses, parse_addresses
from cairn._context import (
    NO_DEFAULT,
    Abandoned,
    ChildInterrupted,
    Execution,
    GraphInterrupt,
    Sleep,
    SyncBody,
)
from cairn._credentials import ConnectionSettings, TlsConfig
from cairn._errors import InterruptTimeoutError, TaskFailedError
from cairn._functional import Final, Task, entrypoint, injected
from cairn._graph import CompiledStateGraph, GraphTask
from cairn._metrics import for_worker
from cairn._report_limits import oversized, replacement
from cairn._store import Store, stub_call, ttl_config
from cairn._store_index import StoreIndex
from cairn._types import RetryPolicy
from cairn._values import InvalidValueError, to_json, to_value
from cairn._version import __version__
from cairn.v1 import errors_pb2, worker_service_pb2, worker_service_pb2_grpc

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger("cairn.worker")
pb = worker_service_pb2
Function = Task | entrypoint | CompiledStateGraph

MAX_BATCH = 64
"""The most messages sent to the service as one ConnectRequest."""

Sender = Callable[[pb.ConnectRequest], None]

CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


class Worker:
    """Runs the tasks, entrypoints and graph nodes it registers when the
    service assigns them.

    `address` is one server, or several replicas of one service as a
    sequence or a comma-separated string. The worker keeps a Connect stream
    open to every address at once, so that work of a run owned by any
    replica reaches it; each stream reconnects on its own with backoff (up to
    `reconnect_max_interval` seconds) when it drops:

        worker = Worker(["10.0.0.1:50051", "10.0.0.2:50051"], functions=[essay])
        await worker.run()

    `max_concurrency` (tasks and graph nodes) and `max_entrypoints` bound
    what runs at once over all streams together: each service is told the
    whole limit, and an assignment beyond it waits in the worker until a
    slot frees. Every execution answers on the stream it came from.
    `connected` is set while at least one stream is up, `all_connected`
    while every one is.

    `token` (a JWT) or `api_key`, `namespace` and `tls` are taken as by
    `Client` (each from its CAIRN_* environment variable when not given) and
    sent on every Connect stream: the worker serves that one namespace, and
    receives only the tasks of runs in it.

        worker = Worker(
            "cairn.internal:50051",
            functions=[essay],
            api_key=os.environ["CAIRN_WORKER_KEY"],
            namespace="team-a",
            tls=TlsConfig(ca_file="ca.pem"),
        )

    `metrics_address` ("127.0.0.1:9465") serves Prometheus metrics of this
    worker at /metrics while it runs (port 0 picks a free one:
    `metrics_address` says which once it runs); `metrics_registry` records
    them in a prometheus_client registry the application exposes itself.
    Both need prometheus-client (see cairn/_metrics.py for the metrics).

    Tasks, entrypoints and nodes reach the long-term memory store with
    `get_store()` (or a `store` parameter), over the stream their
    assignment came on. `store_index` turns on semantic search, as
    LangGraph's `index=` (the embedding runs in this worker), and
    `store_ttl` sets TTL defaults, as LangGraph's TTLConfig (see
    `cairn.Store`):

        worker = Worker(address, functions=[chat], store_index={"embed": embed, "dims": 256})
    """

    def __init__(
        self,
        address: Addresses = "127.0.0.1:50051",
        *,
        functions: Iterable[Function] = (),
        max_concurrency: int = 16,
        max_entrypoints: int = 256,
        worker_id: str = "",
        reconnect_max_interval: float = 5.0,
        local_calls: bool = True,
        token: str | None = None,
        api_key: str | None = None,
        namespace: str | None = None,
        tls: bool | TlsConfig | None = None,
        metrics_address: str | None = None,
        metrics_registry: CollectorRegistry | None = None,
        store_index: Mapping[str, Any] | None = None,
        store_ttl: Mapping[str, Any] | None = None,
    ) -> None:
        self.addresses = parse_addresses(address)
        self._settings = ConnectionSettings.resolve(
            token=token, api_key=api_key, namespace=namespace, tls=tls
        )
        self.namespace = self._settings.namespace
        self.address = ",".join(self.addresses)
        self.local_calls = local_calls
        self.worker_id = worker_id
        self.max_concurrency = max_concurrency
        self.max_entrypoints = max_entrypoints
        self.reconnect_max_interval = reconnect_max_interval
        self.connected = asyncio.Event()
        self.all_connected = asyncio.Event()
        self._functions: dict[str, Task | entrypoint | GraphTask] = {}
        self._graphs: dict[str, CompiledStateGraph] = {}
        self._stopping = False
        self._stop_requested: asyncio.Event | None = None
        self._connections = [_Connection(self, target) for target in self.addresses]
        self._task_slots = asyncio.Semaphore(max_concurrency)
        self._trace_contexts: dict[str, dict[str, str]] = {}
        """The span contexts of running executions: their local calls' parent."""
        self._entrypoint_slots = asyncio.Semaphore(max_entrypoints)
        self._task_threads = concurrent.futures.ThreadPoolExecutor(
            max_concurrency, thread_name_prefix="cairn-task"
        )
        self._entrypoint_threads = concurrent.futures.ThreadPoolExecutor(
            max_entrypoints, thread_name_prefix="cairn-entrypoint"
        )
        # Checked here, so that a bad setting fails at construction.
        self.store_index = StoreIndex(store_index) if store_index is not None else None
        self.store_ttl = ttl_config(store_ttl)
        self._metrics = for_worker(
            address=metrics_address,
            registry=metrics_registry,
            max_tasks=max_concurrency,
            max_entrypoints=max_entrypoints,
        )
        for function in functions:
            self.register(function)

    @property
    def metrics_address(self) -> str | None:
        """Where /metrics is served (host:port) while the worker runs."""
        return self._metrics.address

    def register(self, function: Function) -> Function:
        """Serve a `@task`, an `@entrypoint` or a compiled `StateGraph` (whose
        nodes and routers are served as tasks); returns it (usable as a
        decorator)."""
        if isinstance(function, CompiledStateGraph):
            for graph in (*function.subgraphs.values(), function):
                self._graphs[graph.name] = graph
                self._functions.update(graph.tasks)
            return function
        if not isinstance(function, Task | entrypoint) or not function.name:
            raise TypeError(f"{function!r} is not a task, an entrypoint or a compiled graph")
        self._functions[function.name] = function
        return function

    # --- lifecycle --------------------------------------------------------------------

    async def run(self) -> None:
        """Serve on every address until `stop()`."""
        self._stop_requested = asyncio.Event()
        self._metrics.start()
        streams = [asyncio.ensure_future(c.run()) for c in self._connections]
        try:
            await asyncio.gather(*streams)
        finally:
            for stream in streams:
                stream.cancel()
            await asyncio.gather(*streams, return_exceptions=True)
            self._task_threads.shutdown(wait=False, cancel_futures=True)
            self._entrypoint_threads.shutdown(wait=False, cancel_futures=True)
            self._metrics.stop()

    async def stop(self, grace: float = 10.0) -> None:
        """Finish the tasks in progress (up to `grace` seconds), then
        disconnect from every address; anything unfinished is re-dispatched
        by the service."""
        self._stopping = True
        if self._stop_requested is not None:
            self._stop_requested.set()
        running = [task for c in self._connections for task, _ in c.running.values()]
        if running:
            await asyncio.wait(running, timeout=grace)
        for connection in self._connections:
            connection.close()

    def run_sync(self) -> None:
        """Run in a script until SIGINT or SIGTERM (on uvloop when installed).

        Unless the application configured logging, the SDK's INFO lines go
        to stderr, so that the script says when it is connected and what it
        serves (and when a connection is lost)."""
        _show_sdk_logs()

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, lambda: asyncio.ensure_future(self.stop()))
            await self.run()

        try:
            import uvloop
        except ImportError:
            asyncio.run(main())
        else:
            uvloop.run(main())

    async def _pause(self, seconds: float) -> None:
        """Wait `seconds`, or less if `stop()` is called meanwhile."""
        assert self._stop_requested is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_requested.wait(), seconds)

    def _serving(self) -> str:
        """What this worker serves, for its "connected" log line."""
        kinds: dict[str, list[str]] = {"entrypoints": [], "graphs": list(self._graphs), "tasks": []}
        for name, function in self._functions.items():
            if isinstance(function, entrypoint):
                kinds["entrypoints"].append(name)
            elif not isinstance(function, GraphTask):  # a graph's nodes: the graph says it
                kinds["tasks"].append(name)
        parts = [f"{kind} {', '.join(names)}" for kind, names in kinds.items() if names]
        limits = f"max_concurrency {self.max_concurrency}"
        return f"{'; '.join(parts) or 'nothing'} ({limits})"

    def _connections_changed(self) -> None:
        up = [c.connected for c in self._connections]
        for event, value in ((self.connected, any(up)), (self.all_connected, all(up))):
            if value:
                event.set()
            else:
                event.clear()

    def _hello(self, worker_id: str = "") -> pb.ConnectRequest:
        hello = pb.WorkerHello(
            worker_id=worker_id or self.worker_id,
            max_concurrent_tasks=self.max_concurrency,
            max_concurrent_entrypoints=self.max_entrypoints,
            sdk_language="python",
            sdk_version=__version__,
            identity=f"{os.getpid()}@{socket.gethostname()}",
            accepts_batches=True,
            accepts_journal_pages=True,
        )
        for name, graph in self._graphs.items():
            hello.registrations.add(name=name, kind=pb.TASK_KIND_GRAPH, graph=graph._spec)
        for name, function in self._functions.items():
            kind = (
                pb.TASK_KIND_ENTRYPOINT if isinstance(function, entrypoint) else pb.TASK_KIND_TASK
            )
            registration = hello.registrations.add(name=name, kind=kind)
            if function.retry_policy is not None:
                registration.retry_policy.CopyFrom(function.retry_policy._to_proto())
            timeouts = function.timeouts if isinstance(function, Task | entrypoint) else None
            if timeouts is not None:
                registration.timeouts.CopyFrom(timeouts._to_proto())
        return pb.ConnectRequest(hello=hello)

    # --- local calls (LocalCalls, through the caller's connection) --------------------

    def serves(self, parent: Execution, name: str) -> bool:
        """An entrypoint's calls of a plain task this worker serves run here
        (tasks called by tasks or graph nodes go through the service, so that
        nested calls never wait on a full thread pool)."""
        return (
            parent.assignment.kind == pb.TASK_KIND_ENTRYPOINT
            and type(self._functions.get(name)) is Task
            and not self._stopping
        )

    def _local_call(self, parent: Execution, schedule: pb.ScheduleTask) -> Execution:
        """The execution of call `schedule` of `parent`, detached: the service
        hears of it when it finishes, or earlier if it needs the service. The
        caller starts it on the loop."""
        child = parent.local_call(schedule)
        trace_context = self._trace_contexts.get(parent.task_id, parent.assignment.trace_context)
        child.assignment.trace_context.update(trace_context)
        if parent.assignment.announce_calls:
            child.attach()  # the run streams task starts
        function = self._functions[schedule.name]
        assert isinstance(function, Task)
        if not asyncio.iscoroutinefunction(function.fn):
            # Bound here, so that the caller can claim it (SyncBody). An input
            # that does not decode fails on the loop instead, as anywhere.
            with contextlib.suppress(Exception):
                args, kwargs = function._unpack(to_json(schedule.input))
                child.body = SyncBody(child, functools.partial(function.fn, *args, **kwargs))
        return child

    # --- executions -------------------------------------------------------------------

    async def _admit(self, execution: Execution) -> None:
        """Run an assignment once a slot of its kind is free: the service
        bounds each stream, this bounds them all together."""
        entrypoint_ = execution.assignment.kind == pb.TASK_KIND_ENTRYPOINT
        slots = self._entrypoint_slots if entrypoint_ else self._task_slots
        if slots.locked():
            log.debug(
                "%s %s waits for a free slot (%s=%d reached over all connections)",
                execution.assignment.name,
                execution.task_id,
                "max_entrypoints" if entrypoint_ else "max_concurrency",
                self.max_entrypoints if entrypoint_ else self.max_concurrency,
            )
        async with slots:
            if self._stopping:
                return  # never started: re-dispatched when the stream closes
            with self._metrics.in_slot(execution.assignment):
                await self._execute(execution)

    async def _call(self, execution: Execution, function: Task | entrypoint | GraphTask) -> Any:
        """The result of `function` called with the assignment's input."""
        input = to_json(execution.assignment.input)
        if isinstance(function, entrypoint):
            assert function.fn is not None
            kwargs = injected(function._params, execution)
            return await execution.run(function.fn, (input,), kwargs, self._entrypoint_threads)
        if isinstance(function, GraphTask):
            execution.node = function.name.split(":")[1]  # "<graph>:<node>[:route<i>]"
            kwargs = injected(function.params, execution)
            output = await execution.run(function.fn, (input,), kwargs, self._task_threads)
            return function.encode(output)
        args, kwargs = function._unpack(input)
        return await execution.run(function.fn, args, kwargs, self._task_threads)

    async def _execute(self, execution: Execution) -> None:
        assignment = execution.assignment
        kind = "entrypoint" if assignment.kind == pb.TASK_KIND_ENTRYPOINT else "task"
        with _tracing.task_span(assignment, worker_id=self.worker_id, kind=kind) as context:
            if context is not None:
                self._trace_contexts[execution.task_id] = context
            try:
                await self._metrics.timed(assignment, self._traced_body(execution))
            finally:
                execution.heartbeats.close()
                self._trace_contexts.pop(execution.task_id, None)

    async def _traced_body(self, execution: Execution) -> str:
        """The execution's outcome, also as the `cairn.task.outcome` of its span."""
        outcome = await self._execute_body(execution)
        _tracing.task_outcome(outcome)
        return outcome

    async def _execute_body(self, execution: Execution) -> str:
        """Run the execution and answer the service; returns the outcome
        (cairn_worker_tasks_total's label)."""
        assignment = execution.assignment
        task_id = assignment.task_id
        function = self._functions.get(assignment.name)
        try:
            if function is None:
                raise LookupError(f"this worker does not serve {assignment.name!r}")
            if execution.body is not None:  # a local call, bound by its caller
                result = await execution.run_body(self._task_threads)
            else:
                result = await self._call(execution, function)
            completed = pb.TaskCompleted(task_id=task_id)
            if isinstance(result, Final):
                to_value(result.value, completed.result, field="result")
                to_value(result.save, completed.save, field="save")
            else:
                to_value(result, completed.result, field="result")
            execution.attach_children()
            if not execution.report_locally(lambda s: s.local_result.CopyFrom(completed.result)):
                execution.send(pb.ConnectRequest(completed=completed))
            return "completed"
        except GraphInterrupt as signal_:
            execution.attach_children()
            interrupted = pb.TaskInterrupted(task_id=task_id, index=signal_.index)
            try:
                to_value(signal_.value, interrupted.value, field="interrupt value")
                if signal_.timeout is not None:
                    interrupted.timeout.FromNanoseconds(round(signal_.timeout * 1e9))
                    if signal_.default is not NO_DEFAULT:
                        default = interrupted.timeout_default
                        to_value(signal_.default, default, field="interrupt default")
            except InvalidValueError as error:  # not JSON, or too deep: the task fails
                failure = _task_error(error, None)
                execution.send(
                    pb.ConnectRequest(failed=pb.TaskFailed(task_id=task_id, error=failure))
                )
                return "failed"
            execution.send(pb.ConnectRequest(interrupted=interrupted))
            return "interrupted"
        except Sleep as signal_:
            execution.attach_children()
            sleeping = pb.TaskSleeping(task_id=task_id, index=signal_.index)
            if signal_.wake_time is not None:
                sleeping.wake_time.FromNanoseconds(round(signal_.wake_time * 1e9))
            else:
                sleeping.sleep_duration.FromNanoseconds(round((signal_.duration or 0.0) * 1e9))
            execution.send(pb.ConnectRequest(sleeping=sleeping))
            return "sleeping"
        except ChildInterrupted:
            execution.attach_children()
            execution.send(pb.ConnectRequest(suspended=pb.TaskSuspended(task_id=task_id)))
            return "suspended"
        except asyncio.CancelledError:
            # Withdrawn by the service, or the connection is gone: release a
            # sync body that may be blocked on a task result in its thread.
            execution.abandon()
            return "cancelled"
        except Abandoned:
            return "abandoned"
        except Exception as error:
            _tracing.task_failed(error)
            policy = function.retry_policy if function is not None else None
            failure = _task_error(error, policy)
            execution.attach_children()
            if not execution.report_locally(lambda s: s.local_error.CopyFrom(failure)):
                execution.send(
                    pb.ConnectRequest(failed=pb.TaskFailed(task_id=task_id, error=failure))
                )
            return "failed"


class _Connection:
    """The Connect stream to one address, reconnecting with backoff when it
    drops. The executions it starts answer on it and nowhere else."""

    def __init__(self, worker: Worker, address: str) -> None:
        self.worker = worker
        self.address = address
        self.worker_id = ""  # as the service at this address knows this worker
        self.connected = False
        self.running: dict[str, tuple[asyncio.Task[None], Execution]] = {}
        self.store: Store | None = None  # over the current stream's channel
        self._outbox: asyncio.Queue[pb.ConnectRequest | None] | None = None
        self._batches = False  # whether the service reads ConnectRequest.batch
        self._max_payload = 0  # Welcome.max_payload_bytes: reports over it are not sent
        self._gathering: dict[str, pb.TaskAssignment] = {}
        """Assignments whose journal pages are still coming, by task id."""

    async def run(self) -> None:
        worker = self.worker
        delay = 0.05
        reported = False  # this outage was logged as a warning already
        while not worker._stopping:
            try:
                await self._session()
            except grpc.aio.AioRpcError as error:
                if worker._stopping:
                    break
                # A server that stays down is reported once, not at every try.
                level = logging.DEBUG if reported and not self.connected else logging.WARNING
                log.log(level, "connection to %s lost: %s", self.address, _lost(error))
                reported = True
            if self.connected:
                delay = 0.05  # it was up: try again soon
                self.connected = False
                worker._connections_changed()
            if worker._stopping:
                break
            await worker._pause(delay * (1 + random.random()))
            delay = min(delay * 2, worker.reconnect_max_interval)

    def close(self) -> None:
        if self._outbox is not None:
            self._outbox.put_nowait(None)

    async def _session(self) -> None:
        outbox: asyncio.Queue[pb.ConnectRequest | None] = asyncio.Queue()
        self._outbox = outbox
        self._batches = False  # until this service's welcome says otherwise
        self._max_payload = 0
        self._gathering.clear()
        outbox.put_nowait(self.worker._hello(self.worker_id))

        async def requests() -> AsyncIterator[pb.ConnectRequest]:
            # Messages ready at once go as one batch once the service said
            # it reads them (a long run of small messages costs far less).
            ended = False
            while not ended:
                batch: list[pb.ConnectRequest] = []
                size = 0  # a batch stays within one report's limit (or one report)
                message = await outbox.get()
                while message is not None:
                    batch.append(message)
                    if not self._batches or len(batch) >= MAX_BATCH or outbox.empty():
                        break
                    size += message.ByteSize()  # only where the batch may grow
                    if self._max_payload and size >= self._max_payload:
                        break
                    message = outbox.get_nowait()
                ended = message is None
                if len(batch) == 1:
                    yield batch[0]
                elif batch:
                    yield pb.ConnectRequest(batch=pb.ConnectRequestBatch(requests=batch))

        worker = self.worker
        async with worker._settings.aio_channel(self.address, CHANNEL_OPTIONS) as channel:
            # Memory store calls of the executions this stream starts go
            # over its channel: the same server, namespace and credentials.
            self.store = Store(
                stub_call(channel),
                loop=asyncio.get_running_loop(),
                index=worker.store_index,
                ttl=worker.store_ttl,
            )
            call = worker_service_pb2_grpc.WorkerServiceStub(channel).Connect(requests())
            try:
                async for response in call:
                    self._handle(response, outbox)
            finally:
                self._outbox = None
                for task, _ in list(self.running.values()):
                    task.cancel()
                self.running.clear()

    def _handle(
        self, response: pb.ConnectResponse, outbox: asyncio.Queue[pb.ConnectRequest | None]
    ) -> None:
        worker = self.worker
        kind = response.WhichOneof("kind")
        if kind == "batch":
            for item in response.batch.responses:
                self._handle(item, outbox)
        elif kind == "welcome":
            self.worker_id = response.welcome.worker_id
            # One name on every replica: later hellos reuse the first one.
            worker.worker_id = worker.worker_id or self.worker_id
            self._batches = response.welcome.accepts_batches
            self._max_payload = response.welcome.max_payload_bytes
            self.connected = True
            worker._connections_changed()
            log.info(
                "worker %s connected to %s%s, serving %s",
                self.worker_id,
                self.address,
                f" in namespace {worker.namespace}" if worker.namespace else "",
                worker._serving(),
            )
        elif kind == "assignment" and not worker._stopping:
            # While stopping, new assignments stay unstarted; the service
            # re-dispatches them when this stream closes.
            if response.assignment.journal_continues:  # its pages follow
                self._gathering[response.assignment.task_id] = response.assignment
            else:
                self._start(response.assignment, outbox)
        elif kind == "journal_page":
            self._journal_page(response.journal_page, outbox)
        elif kind == "child_outcome":
            running = self.running.get(response.child_outcome.parent_task_id)
            if running is not None:
                running[1].deliver(response.child_outcome)
        elif kind == "cancel":
            self._gathering.pop(response.cancel.task_id, None)
            running = self.running.pop(response.cancel.task_id, None)
            if running is not None:
                running[0].cancel()
        elif kind == "rejected":
            error = response.rejected.error
            log.warning(
                "service at %s rejected a message about task %s: %s (%s)",
                self.address,
                response.rejected.task_id,
                error.message,
                error.reason,
            )

    def _journal_page(
        self, page: pb.JournalPage, outbox: asyncio.Queue[pb.ConnectRequest | None]
    ) -> None:
        assignment = self._gathering.get(page.task_id)
        if assignment is None:
            return  # withdrawn, or assigned while stopping
        assignment.journal.extend(page.entries)
        if page.last:
            del self._gathering[page.task_id]
            if not self.worker._stopping:
                self._start(assignment, outbox)

    def _send(self, outbox: asyncio.Queue[pb.ConnectRequest | None]) -> Sender:
        """How executions answer on this stream: reports over the service's
        payload limit are replaced (cairn/_report_limits.py)."""

        def send(message: pb.ConnectRequest) -> None:
            found = oversized(message, self._max_payload)
            if found is None:
                outbox.put_nowait(message)
                return
            log.warning(
                "task %s: its %s report is %d bytes, over the service's limit of %d",
                found.task_id,
                found.kind,
                found.size,
                found.limit,
            )
            if found.kind == "schedule" and message.schedule.WhichOneof("local") in (
                "local_result",
                "local_error",
            ):
                # A local call's outcome: its caller has it already, and the
                # service never would: the caller fails instead.
                what = f"local call {message.schedule.index} ({message.schedule.name}) result"
                failed = pb.TaskFailed(task_id=found.task_id, error=found.error(what))
                outbox.put_nowait(pb.ConnectRequest(failed=failed))
                running = self.running.pop(found.task_id, None)
                if running is not None:
                    running[0].cancel()
                return
            if found.kind == "schedule":  # the call fails where the task awaits it
                running = self.running.get(found.task_id)
                if running is not None:
                    running[1].deliver(
                        pb.ChildOutcome(
                            parent_task_id=found.task_id,
                            index=message.schedule.index,
                            error=found.error(),
                        )
                    )
                return
            instead = replacement(found)
            if instead is not None:
                outbox.put_nowait(instead)

        return send

    def _start(
        self, assignment: pb.TaskAssignment, outbox: asyncio.Queue[pb.ConnectRequest | None]
    ) -> None:
        loop = asyncio.get_running_loop()
        local = self if self.worker.local_calls else None
        execution = Execution(assignment, loop=loop, send=self._send(outbox), local=local)
        execution.store = self.store
        self._run(execution, self.worker._admit(execution))

    def _run(self, execution: Execution, body: Coroutine[Any, Any, None]) -> None:
        task_id = execution.task_id
        task = asyncio.ensure_future(body)
        self.running[task_id] = (task, execution)
        task.add_done_callback(lambda _: self._forget(task_id, task))

    def _forget(self, task_id: str, task: asyncio.Task[None]) -> None:
        running = self.running.get(task_id)
        if running is not None and running[0] is task:
            del self.running[task_id]

    # --- LocalCalls: an entrypoint's calls run here, answering on this stream -----------

    def serves(self, parent: Execution, name: str) -> bool:
        return self.worker.serves(parent, name)

    def start(self, parent: Execution, schedule: pb.ScheduleTask) -> Execution:
        """Start call `schedule` of `parent` here; callable from any thread.
        A local call takes no slot: it runs on behalf of its caller."""
        child = self.worker._local_call(parent, schedule)
        child.on_loop(self._run_local, child)
        return child

    def _run_local(self, child: Execution) -> None:
        self._run(child, self.worker._execute(child))


def _lost(error: grpc.aio.AioRpcError) -> str:
    """Why a stream ended, for the log: the server's words too when the
    worker must change something (its credential or its grants)."""
    code = error.code()
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return f"{code.name}: {error.details()}"
    return str(code.name)


def _show_sdk_logs() -> None:
    """Print the SDK's INFO log lines to stderr, unless logging is configured
    (a handler on the root or the `cairn` logger, or a level set on it)."""
    sdk = logging.getLogger("cairn")
    if logging.getLogger().handlers or sdk.handlers or sdk.level != logging.NOTSET:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    sdk.addHandler(handler)
    sdk.setLevel(logging.INFO)


def _task_error(error: Exception, policy: RetryPolicy | None) -> errors_pb2.TaskError:
    if isinstance(error, TaskFailedError):
        # A task called by this workflow failed and the workflow let it escape:
        # report the task's own error type.
        return errors_pb2.TaskError(
            type=error.type, message=error.message, traceback=error.remote_traceback
        )
    # A value the service cannot take, or an interrupt that timed out (a
    # retry replays the same timeout), fails the same way every attempt.
    final = isinstance(error, InvalidValueError | InterruptTimeoutError)
    retryable = not final and (policy or RetryPolicy()).retries(error)
    return errors_pb2.TaskError(
        type=type(error).__name__,
        message=str(error),
        retryable=retryable,
        traceback="".join(traceback.format_exception(error)),
    )
