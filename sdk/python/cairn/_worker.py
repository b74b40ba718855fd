"""Worker: serves tasks, entrypoints and graphs to the Cairn service.

    worker = Worker("127.0.0.1:50051", functions=[write_essay, workflow, graph])
    await worker.run()          # or worker.run_sync() in a script

The worker keeps one Connect stream open, reconnecting with backoff when it
drops; the service bounds how many tasks it runs at once (max_concurrency)
and re-dispatches whatever it held when the stream broke.
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
from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc

from cairn._context import Abandoned, ChildInterrupted, Execution, GraphInterrupt, SyncBody
from cairn._errors import TaskFailedError
from cairn._functional import Final, Task, entrypoint
from cairn._graph import CompiledStateGraph, GraphTask
from cairn._types import RetryPolicy
from cairn._values import InvalidValueError, to_json, to_value
from cairn._version import __version__
from cairn.v1 import errors_pb2, worker_service_pb2, worker_service_pb2_grpc

log = logging.getLogger("cairn.worker")
pb = worker_service_pb2
Function = Task | entrypoint | CompiledStateGraph

MAX_BATCH = 64
"""The most messages sent to the service as one ConnectRequest."""

CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


class Worker:
    """Runs the tasks, entrypoints and graph nodes it registers when the
    service assigns them."""

    def __init__(
        self,
        address: str = "127.0.0.1:50051",
        *,
        functions: Iterable[Function] = (),
        max_concurrency: int = 16,
        max_entrypoints: int = 256,
        worker_id: str = "",
        reconnect_max_interval: float = 5.0,
        local_calls: bool = True,
    ) -> None:
        self.address = address
        self.local_calls = local_calls
        self.worker_id = worker_id
        self.max_concurrency = max_concurrency
        self.max_entrypoints = max_entrypoints
        self.reconnect_max_interval = reconnect_max_interval
        self.connected = asyncio.Event()
        self._functions: dict[str, Task | entrypoint | GraphTask] = {}
        self._graphs: dict[str, CompiledStateGraph] = {}
        self._stopping = False
        self._stop_requested: asyncio.Event | None = None
        self._outbox: asyncio.Queue[pb.ConnectRequest | None] | None = None
        self._batches = False  # whether the service reads ConnectRequest.batch
        self._running: dict[str, tuple[asyncio.Task[None], Execution]] = {}
        self._task_threads = concurrent.futures.ThreadPoolExecutor(
            max_concurrency, thread_name_prefix="cairn-task"
        )
        self._entrypoint_threads = concurrent.futures.ThreadPoolExecutor(
            max_entrypoints, thread_name_prefix="cairn-entrypoint"
        )
        for function in functions:
            self.register(function)

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
        """Serve until `stop()`; reconnects with exponential backoff."""
        self._stop_requested = asyncio.Event()
        delay = 0.05
        while not self._stopping:
            try:
                await self._session()
                delay = 0.05
            except grpc.aio.AioRpcError as error:
                if self._stopping:
                    break
                log.warning("connection to %s lost: %s", self.address, error.code().name)
            self.connected.clear()
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), delay * (1 + random.random()))
            delay = min(delay * 2, self.reconnect_max_interval)
        self._task_threads.shutdown(wait=False, cancel_futures=True)
        self._entrypoint_threads.shutdown(wait=False, cancel_futures=True)

    async def stop(self, grace: float = 10.0) -> None:
        """Finish the tasks in progress (up to `grace` seconds), then
        disconnect; anything unfinished is re-dispatched by the service."""
        self._stopping = True
        if self._stop_requested is not None:
            self._stop_requested.set()
        running = [t for t, _ in self._running.values()]
        if running:
            await asyncio.wait(running, timeout=grace)
        if self._outbox is not None:
            self._outbox.put_nowait(None)

    def run_sync(self) -> None:
        """Run in a script until SIGINT or SIGTERM (on uvloop when installed)."""

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

    # --- one connection ------------------------------------------------------------------

    def _hello(self) -> pb.ConnectRequest:
        hello = pb.WorkerHello(
            worker_id=self.worker_id,
            max_concurrent_tasks=self.max_concurrency,
            max_concurrent_entrypoints=self.max_entrypoints,
            sdk_language="python",
            sdk_version=__version__,
            identity=f"{os.getpid()}@{socket.gethostname()}",
            accepts_batches=True,
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
        return pb.ConnectRequest(hello=hello)

    async def _session(self) -> None:
        outbox: asyncio.Queue[pb.ConnectRequest | None] = asyncio.Queue()
        self._outbox = outbox
        self._batches = False  # until this service's welcome says otherwise
        outbox.put_nowait(self._hello())

        async def requests() -> AsyncIterator[pb.ConnectRequest]:
            # Messages ready at once go as one batch once the service said
            # it reads them (a long run of small messages costs far less).
            ended = False
            while not ended:
                batch: list[pb.ConnectRequest] = []
                message = await outbox.get()
                while message is not None:
                    batch.append(message)
                    if not self._batches or len(batch) >= MAX_BATCH or outbox.empty():
                        break
                    message = outbox.get_nowait()
                ended = message is None
                if len(batch) == 1:
                    yield batch[0]
                elif batch:
                    yield pb.ConnectRequest(batch=pb.ConnectRequestBatch(requests=batch))

        async with grpc.aio.insecure_channel(self.address, options=CHANNEL_OPTIONS) as channel:
            call = worker_service_pb2_grpc.WorkerServiceStub(channel).Connect(requests())
            try:
                async for response in call:
                    self._handle(response, outbox)
            finally:
                self._outbox = None
                for task, _ in list(self._running.values()):
                    task.cancel()
                self._running.clear()

    def _handle(
        self, response: pb.ConnectResponse, outbox: asyncio.Queue[pb.ConnectRequest | None]
    ) -> None:
        kind = response.WhichOneof("kind")
        if kind == "batch":
            for item in response.batch.responses:
                self._handle(item, outbox)
        elif kind == "welcome":
            self.worker_id = response.welcome.worker_id
            self._batches = response.welcome.accepts_batches
            self.connected.set()
            log.info("worker %s connected to %s", self.worker_id, self.address)
        elif kind == "assignment" and not self._stopping:
            # While stopping, new assignments stay unstarted; the service
            # re-dispatches them when this stream closes.
            self._start(response.assignment, outbox)
        elif kind == "child_outcome":
            running = self._running.get(response.child_outcome.parent_task_id)
            if running is not None:
                running[1].deliver(response.child_outcome)
        elif kind == "cancel":
            running = self._running.pop(response.cancel.task_id, None)
            if running is not None:
                running[0].cancel()
        elif kind == "rejected":
            error = response.rejected.error
            log.warning(
                "service rejected a message about task %s: %s (%s)",
                response.rejected.task_id,
                error.message,
                error.reason,
            )

    def _start(
        self, assignment: pb.TaskAssignment, outbox: asyncio.Queue[pb.ConnectRequest | None]
    ) -> None:
        loop = asyncio.get_running_loop()
        local = self if self.local_calls else None
        self._run(Execution(assignment, loop=loop, send=outbox.put_nowait, local=local))

    def _run(self, execution: Execution) -> None:
        task_id = execution.task_id
        task = asyncio.ensure_future(self._execute(execution))
        self._running[task_id] = (task, execution)
        task.add_done_callback(lambda _: self._forget(task_id, task))

    # --- local calls (LocalCalls) ---------------------------------------------------

    def serves(self, parent: Execution, name: str) -> bool:
        """An entrypoint's calls of a plain task this worker serves run here
        (tasks called by tasks or graph nodes go through the service, so that
        nested calls never wait on a full thread pool)."""
        return (
            parent.assignment.kind == pb.TASK_KIND_ENTRYPOINT
            and type(self._functions.get(name)) is Task
            and not self._stopping
        )

    def start(self, parent: Execution, schedule: pb.ScheduleTask) -> Execution:
        """Run call `schedule` of `parent` here, detached: the service hears of
        it when it finishes, or earlier if it needs the service."""
        child = parent.local_call(schedule)
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
        child.on_loop(self._run, child)
        return child

    def _forget(self, task_id: str, task: asyncio.Task[None]) -> None:
        running = self._running.get(task_id)
        if running is not None and running[0] is task:
            del self._running[task_id]

    async def _call(self, execution: Execution, function: Task | entrypoint | GraphTask) -> Any:
        """The result of `function` called with the assignment's input."""
        input = to_json(execution.assignment.input)
        if isinstance(function, entrypoint):
            assert function.fn is not None
            kwargs: dict[str, Any] = {}
            if "previous" in function._params:
                kwargs["previous"] = execution.previous
            if "writer" in function._params:
                kwargs["writer"] = execution.write
            return await execution.run(function.fn, (input,), kwargs, self._entrypoint_threads)
        if isinstance(function, GraphTask):
            output = await execution.run(function.fn, (input,), {}, self._task_threads)
            return function.encode(output)
        args, kwargs = function._unpack(input)
        return await execution.run(function.fn, args, kwargs, self._task_threads)

    async def _execute(self, execution: Execution) -> None:
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
                to_value(result.value, completed.result)
                to_value(result.save, completed.save)
            else:
                to_value(result, completed.result)
            execution.attach_children()
            if not execution.report_locally(lambda s: s.local_result.CopyFrom(completed.result)):
                execution.send(pb.ConnectRequest(completed=completed))
        except GraphInterrupt as signal_:
            execution.attach_children()
            interrupted = pb.TaskInterrupted(
                task_id=task_id, index=signal_.index, value=to_value(signal_.value)
            )
            execution.send(pb.ConnectRequest(interrupted=interrupted))
        except ChildInterrupted:
            execution.attach_children()
            execution.send(pb.ConnectRequest(suspended=pb.TaskSuspended(task_id=task_id)))
        except asyncio.CancelledError:
            # Withdrawn by the service, or the connection is gone: release a
            # sync body that may be blocked on a task result in its thread.
            execution.abandon()
        except Abandoned:
            pass
        except Exception as error:
            policy = function.retry_policy if function is not None else None
            failure = _task_error(error, policy)
            execution.attach_children()
            if not execution.report_locally(lambda s: s.local_error.CopyFrom(failure)):
                execution.send(
                    pb.ConnectRequest(failed=pb.TaskFailed(task_id=task_id, error=failure))
                )


def _task_error(error: Exception, policy: RetryPolicy | None) -> errors_pb2.TaskError:
    if isinstance(error, TaskFailedError):
        # A task called by this workflow failed and the workflow let it escape:
        # report the task's own error type.
        return errors_pb2.TaskError(
            type=error.type, message=error.message, traceback=error.remote_traceback
        )
    retryable = not isinstance(error, InvalidValueError) and (policy or RetryPolicy()).retries(
        error
    )
    return errors_pb2.TaskError(
        type=type(error).__name__,
        message=str(error),
        retryable=retryable,
        traceback="".join(traceback.format_exception(error)),
    )
