"""Client: start, stream, resume and inspect runs and threads.

    async with Client("127.0.0.1:50051") as client:
        run = await client.invoke("workflow", {"topic": "cats"}, thread_id="t1")
        if run.interrupts:
            run = await client.invoke("workflow", Command(resume=True), thread_id="t1")
        print(run.output)

Given several addresses (the replicas of one service), the client fails
over: a call that finds its server gone (UNAVAILABLE) is retried on the next
address, and a stream that loses its server continues on the next one from
the last event it delivered, so every event arrives once and in order.

    client = Client(["10.0.0.1:50051", "10.0.0.2:50051"])
    client = Client("10.0.0.1:50051,10.0.0.2:50051")  # the same

A client that needs credentials, a namespace or TLS takes them as keyword
arguments, or reads them from the CAIRN_* environment variables:

    client = Client("cairn.internal:50051", api_key=key, namespace="team-a", tls=True)

`SyncClient` offers the same methods for scripts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import grpc

from cairn import _tracing
from cairn._addresses import (
    NOT_CONNECTED,
    RECONNECT_OPTIONS,
    Addresses,
    Attempts,
    Failover,
    parse_addresses,
)
from cairn._connected import ConnectedWorker
from cairn._credentials import ConnectionSettings, TlsConfig
from cairn._errors import RunFailedError, from_rpc_error
from cairn._schedules import Schedules
from cairn._store import Store
from cairn._types import (
    _DURABILITY_PB,
    _MULTITASK_PB,
    _RUN_STATE_PB,
    _STREAM_MODE_PB,
    _THREAD_STATUS_PB,
    Command,
    Durability,
    MultitaskStrategy,
    Run,
    RunEvent,
    RunState,
    StateSnapshot,
    StreamMode,
    Thread,
    ThreadStatus,
)
from cairn._values import to_struct, to_value
from cairn.v1 import (
    run_pb2,
    run_service_pb2,
    run_service_pb2_grpc,
    schedule_service_pb2_grpc,
    store_service_pb2_grpc,
    thread_pb2,
    thread_service_pb2,
    thread_service_pb2_grpc,
    worker_service_pb2,
    worker_service_pb2_grpc,
)


class Named(Protocol):
    """An entrypoint or a compiled graph: anything served under a name."""

    @property
    def name(self) -> str: ...


Target = str | Named
_PAGE = 200
T = TypeVar("T")
log = logging.getLogger("cairn.client")

CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    *RECONNECT_OPTIONS,
]
_WAITING = frozenset({RunState.PENDING, RunState.RUNNING})


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The loop the client's channels belong to, when made inside one."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _target_name(target: Target | None) -> str:
    if target is None:
        return ""
    return target if isinstance(target, str) else target.name


def _modes(stream_mode: str | Sequence[str]) -> list[run_pb2.StreamMode.ValueType]:
    names = [stream_mode] if isinstance(stream_mode, str) else list(stream_mode)
    return [_STREAM_MODE_PB[StreamMode(name)] for name in names]


async def _events(call: Any, subgraphs: bool) -> AsyncIterator[RunEvent]:
    """The RunEvents of a server stream, with errors raised as CairnError.
    Chunks from subgraphs and nested tasks (a non-empty namespace) are
    dropped unless `subgraphs`, as LangGraph's `stream(subgraphs=False)`."""
    try:
        async for response in call:
            event = RunEvent._from_proto(response.event)
            if subgraphs or not event.namespace:
                yield event
    except grpc.aio.AioRpcError as error:
        raise from_rpc_error(error) from None


class Session:
    """An interactive run: iterate its events; when it stops at an interrupt,
    answer with `await session.resume(value)` and keep iterating.

    A session talks to one server and does not fail over: if that server
    goes away, iteration raises `UnavailableError`. The run goes on in the
    service; follow it with `Client.join(run_id, after_event_id=...)` and
    answer its interrupts with `Client.invoke(..., Command(resume=...))`."""

    def __init__(
        self,
        call: Any,
        requests: asyncio.Queue[run_service_pb2.SessionRequest | None],
        subgraphs: bool,
        trace: _tracing.ClientCall | None = None,
    ):
        self._call = call
        self._requests = requests
        self._subgraphs = subgraphs
        self._trace = trace or _tracing.ClientCall()
        self.interrupts: tuple[Any, ...] = ()

    def __aiter__(self) -> AsyncIterator[RunEvent]:
        return self._follow()

    async def _follow(self) -> AsyncIterator[RunEvent]:
        try:
            async for event in _events(self._call, self._subgraphs):
                if event.run is not None:
                    self.interrupts = event.run.interrupts
                    self._trace.run(event.run.run_id)
                yield event
        except Exception as error:
            self._trace.fail(error)
            raise
        finally:
            self._trace.end()

    async def resume(self, resume: Any) -> None:
        """Answer the pending interrupts (a value, or a Command)."""
        command = resume if isinstance(resume, Command) else Command(resume=resume)
        self._requests.put_nowait(run_service_pb2.SessionRequest(resume=command._to_proto()))

    async def close(self) -> None:
        self._requests.put_nowait(None)
        self._trace.end()


class Client:
    """Async client of the Cairn service.

    `address` is one server, or several replicas of one service as a
    sequence or a comma-separated string:

        async with Client(["10.0.0.1:50051", "10.0.0.2:50051"]) as client:
            run = await client.invoke("workflow", "cats", thread_id="t1")

    A call that fails with UNAVAILABLE (the server is gone or refuses the
    connection) is retried on the next address in turn, with a short pause
    after each round, for up to `failover_timeout` seconds; then it raises
    `UnavailableError`. With one address, the call is retried on that one,
    which rides out a restart. Other errors are raised at once. Runs started
    without a `request_id` get a generated one, so that a retried start
    returns the run the first attempt started instead of starting another;
    `stream` and `join` resume from the last event they delivered. `timeout`
    is the deadline of each attempt. `session` stays on one server.

    A retried call whose first attempt was applied before its server went
    away reports what the second attempt found: `delete_thread` may raise
    NOT_FOUND (`cancel_run` returns the run it cancelled). `update_state`,
    which would apply twice, is retried only when no server was reached.

    Identity, namespace and TLS (each read from its CAIRN_* environment
    variable when not given; see `cairn.TlsConfig`): `token` (a JWT) or
    `api_key` (one of the two) is sent as `authorization: Bearer ...` and
    `namespace` as `cairn-namespace` on every call; `tls` is True (the
    system's roots), a `TlsConfig` (a CA, a client certificate for mTLS) or
    False (plaintext). A bad combination or an unreadable TLS file raises
    ValueError here; a call the server refuses raises `UnauthenticatedError`
    or `PermissionDeniedError`.

        client = Client(
            "cairn.internal:50051",
            token=os.environ["MY_JWT"],
            namespace="team-a",
            tls=TlsConfig(ca_file="ca.pem"),
        )

    `client.store` is the namespace's long-term memory store (`cairn.Store`,
    LangGraph's BaseStore methods), failing over as every call does;
    `store_index` (LangGraph's `index=`: embed, dims, fields) turns on
    semantic search, embedding in this process, and `store_ttl` sets TTL
    defaults (LangGraph's TTLConfig):

        await client.store.aput(("users", "u-42"), "profile", {"name": "Ada"})

    `client.schedules` creates, lists, pauses, resumes, triggers and deletes
    the namespace's schedules (`cairn.Schedules`):

        await client.schedules.create("digest", {"inbox": "ada"}, cron="0 8 * * *")
    """

    def __init__(
        self,
        address: Addresses = "127.0.0.1:50051",
        *,
        timeout: float | None = None,
        failover_timeout: float = 30.0,
        token: str | None = None,
        api_key: str | None = None,
        namespace: str | None = None,
        tls: bool | TlsConfig | None = None,
        store_index: Mapping[str, Any] | None = None,
        store_ttl: Mapping[str, Any] | None = None,
    ) -> None:
        self.addresses = parse_addresses(address)
        self.timeout = timeout
        self.failover_timeout = failover_timeout
        settings = ConnectionSettings.resolve(
            token=token, api_key=api_key, namespace=namespace, tls=tls
        )
        self._failover = Failover(
            self.addresses, failover_timeout, log, hint=settings.unreachable_hint
        )
        self.namespace = settings.namespace
        self._channels = [
            settings.aio_channel(target, CHANNEL_OPTIONS) for target in self.addresses
        ]
        self._run_stubs = [run_service_pb2_grpc.RunServiceStub(c) for c in self._channels]
        self._stubs: dict[str, list[Any]] = {
            "runs": self._run_stubs,
            "threads": [thread_service_pb2_grpc.ThreadServiceStub(c) for c in self._channels],
            "workers": [worker_service_pb2_grpc.WorkerServiceStub(c) for c in self._channels],
            "store": [store_service_pb2_grpc.StoreServiceStub(c) for c in self._channels],
            "schedules": [schedule_service_pb2_grpc.ScheduleServiceStub(c) for c in self._channels],
        }
        self.store = Store(
            lambda rpc, request: self._call(rpc, request, service="store"),
            loop=_running_loop(),
            index=store_index,
            ttl=store_ttl,
        )
        """The namespace's long-term memory store (see `cairn.Store`). Every
        store call is safe to repeat, so each fails over."""
        self.schedules = Schedules(
            lambda rpc, request: self._call(rpc, request, service="schedules")
        )
        """The namespace's schedules (see `cairn.Schedules`): runs the service
        starts on a cron expression or an interval."""

    @property
    def address(self) -> str:
        """The address calls go to now: the last one that answered."""
        return self.addresses[self._failover.current]

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self._channels))

    async def _failed(
        self, attempts: Attempts | None, error: grpc.aio.AioRpcError, index: int
    ) -> Attempts:
        """Move on from address `index` after `error` (UNAVAILABLE), waiting
        as `Attempts` says, or raise it as a CairnError when time is up."""
        attempts = attempts or self._failover.attempts()
        pause = attempts.failed(index, error.details() or error.code().name)
        if pause is None:
            raise self._failover.gave_up(from_rpc_error(error)) from None
        if pause:
            await asyncio.sleep(pause)
        return attempts

    async def _paged(
        self,
        rpc: str,
        page: Callable[[int, str], Any],
        items: Callable[[Any], Iterable[T]],
        limit: int,
        *,
        service: str,
    ) -> list[T]:
        """Up to `limit` items of list `rpc`, page by page: `page(size,
        token)` makes each request, `items(response)` reads its items."""
        found: list[T] = []
        token = ""
        while len(found) < limit:
            response = await self._call(
                rpc, page(min(_PAGE, limit - len(found)), token), service=service
            )
            found.extend(items(response))
            token = response.next_page_token
            if not token:
                break
        return found

    async def _call(
        self,
        rpc: str,
        request: Any,
        *,
        service: str = "runs",
        repeatable: bool = True,
        metadata: _tracing.Metadata = (),
    ) -> Any:
        """Call unary `rpc` of the run (or "threads", "workers", "store") service, failing over. A
        call that is not `repeatable` (applying it twice would do it twice)
        moves on only when it never reached a server."""
        attempts: Attempts | None = None
        while True:
            index = self._failover.current
            stub = self._stubs[service][index]
            try:
                response = await getattr(stub, rpc)(
                    request, timeout=self.timeout, metadata=metadata or None
                )
            except grpc.aio.AioRpcError as error:
                if error.code() is not grpc.StatusCode.UNAVAILABLE or not (
                    repeatable or NOT_CONNECTED in (error.details() or "")
                ):
                    raise from_rpc_error(error) from None
                attempts = await self._failed(attempts, error, index)
            else:
                if attempts is not None:
                    self._failover.reached()
                return response

    async def _follow(
        self,
        start: Callable[[run_service_pb2_grpc.RunServiceStub], Any] | None,
        *,
        run_id: str = "",
        after_event_id: int = 0,
        subgraphs: bool,
    ) -> AsyncGenerator[RunEvent, None]:
        """A run's events, failing over: `start(stub)` opens the stream
        that starts the run; once an event named the run (or with `run_id`
        from the outset), a lost stream continues with JoinRun after the last
        event received. Chunks from subgraphs and nested tasks (a non-empty
        namespace) are dropped unless `subgraphs`, as LangGraph's
        `stream(subgraphs=False)`."""
        last = after_event_id
        attempts: Attempts | None = None
        while True:
            index = self._failover.current
            stub = self._run_stubs[index]
            if run_id or start is None:
                request = run_service_pb2.JoinRunRequest(run_id=run_id, after_event_id=last)
                call = stub.JoinRun(request, timeout=self.timeout)
            else:
                call = start(stub)
            try:
                async for response in call:
                    if attempts is not None:
                        attempts = None  # progress: a later loss gets a fresh budget
                        self._failover.reached()
                    message = response.event
                    if message.event_id <= last:
                        continue
                    run_id, last = message.run_id, message.event_id
                    event = RunEvent._from_proto(message)
                    if subgraphs or not event.namespace:
                        yield event
                return
            except grpc.aio.AioRpcError as error:
                if error.code() is not grpc.StatusCode.UNAVAILABLE:
                    raise from_rpc_error(error) from None
                attempts = await self._failed(attempts, error, index)
            finally:
                call.cancel()

    @staticmethod
    def _start_fields(
        target: Target | None,
        input: Any,
        *,
        thread_id: str,
        durability: Durability | str | None,
        metadata: dict[str, Any] | None,
        request_id: str | None,
        create_thread: bool,
        checkpoint_id: str | None = None,
        recursion_limit: int | None = None,
        multitask_strategy: MultitaskStrategy | str | None = None,
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "thread_id": thread_id,
            "target": _target_name(target),
            "metadata": to_struct(metadata),
            # Generated when not given: a start retried on another server
            # then returns the run the first attempt started.
            "request_id": request_id or uuid.uuid4().hex,
            "create_thread": create_thread,
            "checkpoint_id": checkpoint_id or "",
            "recursion_limit": recursion_limit or 0,
        }
        if durability is not None:
            fields["durability"] = _DURABILITY_PB[Durability(durability)]
        if multitask_strategy is not None:
            fields["multitask_strategy"] = _MULTITASK_PB[MultitaskStrategy(multitask_strategy)]
        if isinstance(input, Command):
            fields["command"] = input._to_proto()
        elif input is not None:
            fields["input"] = to_value(input)
        return fields

    # --- runs ---------------------------------------------------------------------------

    async def invoke(
        self,
        target: Target | None,
        input: Any = None,
        *,
        thread_id: str,
        durability: Durability | str | None = None,
        metadata: dict[str, Any] | None = None,
        request_id: str | None = None,
        create_thread: bool = True,
        checkpoint_id: str | None = None,
        recursion_limit: int | None = None,
        multitask_strategy: MultitaskStrategy | str | None = None,
    ) -> Run:
        """Run `target` on a thread and wait until it finishes or stops at an
        interrupt. `input` may be a `Command` to resume, or None to retry the
        thread's unfinished run (as in LangGraph). `checkpoint_id` starts from
        an older checkpoint instead of the latest, forking a new branch (time
        travel). `recursion_limit` caps a graph run's supersteps (default 25).
        `multitask_strategy` says what to do when the thread has an active
        run: "reject" (ThreadBusyError, the default), "enqueue", "interrupt"
        or "rollback" (see MultitaskStrategy). Raises RunFailedError when the
        run fails."""
        request = run_service_pb2.InvokeRequest(
            **self._start_fields(
                target,
                input,
                thread_id=thread_id,
                durability=durability,
                metadata=metadata,
                request_id=request_id,
                create_thread=create_thread,
                checkpoint_id=checkpoint_id,
                recursion_limit=recursion_limit,
                multitask_strategy=multitask_strategy,
            )
        )
        with _tracing.client_span("invoke", request.target, thread_id) as trace:
            response = await self._call("Invoke", request, metadata=trace.metadata)
            run = Run._from_proto(response.run)
            trace.run(run.run_id)
            if run.state in _WAITING:
                # A retry found the run the first attempt started, still going
                # on: wait for its end as the first attempt would have.
                async for event in self.join(run.run_id):
                    if event.run is not None:
                        run = event.run
            if run.state is RunState.FAILED:
                raise RunFailedError(run)
            return run

    async def stream(
        self,
        target: Target | None,
        input: Any = None,
        *,
        thread_id: str,
        stream_mode: str | Sequence[str] = "updates",
        durability: Durability | str | None = None,
        metadata: dict[str, Any] | None = None,
        request_id: str | None = None,
        create_thread: bool = True,
        checkpoint_id: str | None = None,
        recursion_limit: int | None = None,
        multitask_strategy: MultitaskStrategy | str | None = None,
        subgraphs: bool = False,
    ) -> AsyncIterator[RunEvent]:
        """Run `target` and yield its events: chunks of the chosen stream
        modes and lifecycle events; with `subgraphs`, also the chunks of
        subgraphs and nested tasks (their `namespace` says where they come
        from). After a disconnect, continue with
        `join(run_id, after_event_id=last_event.event_id)`."""
        request = run_service_pb2.StreamRequest(
            stream_modes=_modes(stream_mode),
            **self._start_fields(
                target,
                input,
                thread_id=thread_id,
                durability=durability,
                metadata=metadata,
                request_id=request_id,
                create_thread=create_thread,
                checkpoint_id=checkpoint_id,
                recursion_limit=recursion_limit,
                multitask_strategy=multitask_strategy,
            ),
        )
        with _tracing.client_span("stream", request.target, thread_id) as trace:
            events = self._follow(
                lambda stub: stub.Stream(
                    request, timeout=self.timeout, metadata=trace.metadata or None
                ),
                subgraphs=subgraphs,
            )
            async with contextlib.aclosing(events):
                async for event in events:
                    if event.run is not None:
                        trace.run(event.run.run_id)
                    yield event

    async def join(
        self, run_id: str, *, after_event_id: int = 0, subgraphs: bool = False
    ) -> AsyncIterator[RunEvent]:
        """Yield a run's events after `after_event_id`, live while it runs;
        fails over as `stream` does.

            async for event in client.join(run_id, after_event_id=last_seen):
                ...
        """
        events = self._follow(
            None, run_id=run_id, after_event_id=after_event_id, subgraphs=subgraphs
        )
        async with contextlib.aclosing(events):
            async for event in events:
                yield event

    def session(
        self,
        target: Target | None,
        input: Any = None,
        *,
        thread_id: str,
        stream_mode: str | Sequence[str] = "updates",
        durability: Durability | str | None = None,
        metadata: dict[str, Any] | None = None,
        create_thread: bool = True,
        recursion_limit: int | None = None,
        multitask_strategy: MultitaskStrategy | str | None = None,
        subgraphs: bool = False,
    ) -> Session:
        """Start an interactive session (see `Session`) on the address in
        use; a session does not fail over to another address."""
        start = run_service_pb2.StreamRequest(
            stream_modes=_modes(stream_mode),
            **self._start_fields(
                target,
                input,
                thread_id=thread_id,
                durability=durability,
                metadata=metadata,
                request_id=None,
                create_thread=create_thread,
                recursion_limit=recursion_limit,
                multitask_strategy=multitask_strategy,
            ),
        )
        requests: asyncio.Queue[run_service_pb2.SessionRequest | None] = asyncio.Queue()
        requests.put_nowait(run_service_pb2.SessionRequest(start=start))

        async def outgoing() -> AsyncIterator[run_service_pb2.SessionRequest]:
            while (message := await requests.get()) is not None:
                yield message

        trace = _tracing.client_call("session", start.target, thread_id)
        call = self._run_stubs[self._failover.current].Session(
            outgoing(), timeout=self.timeout, metadata=trace.metadata or None
        )
        return Session(call, requests, subgraphs, trace)

    async def get_run(self, run_id: str) -> Run:
        response = await self._call("GetRun", run_service_pb2.GetRunRequest(run_id=run_id))
        return Run._from_proto(response.run)

    async def list_runs(
        self,
        thread_id: str | None = None,
        *,
        state: RunState | str | None = None,
        waiting: bool = False,
        limit: int = 100,
    ) -> list[Run]:
        """A thread's runs, newest first; without a thread, the runs of every
        thread of the client's namespace. `waiting=True` keeps only the runs
        that wait on a worker or a retry (their `waiting` is not empty):

            for run in await client.list_runs(waiting=True):
                print(run.thread_id, run.waiting[0].reason, run.waiting[0].task_name)
        """
        state_pb = _RUN_STATE_PB[RunState(state)] if state else run_pb2.RUN_STATE_UNSPECIFIED

        def page(size: int, token: str) -> run_service_pb2.ListRunsRequest:
            return run_service_pb2.ListRunsRequest(
                thread_id=thread_id or "",
                page_size=size,
                page_token=token,
                state=state_pb,
                waiting=waiting,
            )

        return await self._paged(
            "ListRuns", page, lambda r: map(Run._from_proto, r.runs), limit, service="runs"
        )

    async def cancel_run(self, run_id: str) -> Run:
        request = run_service_pb2.CancelRunRequest(run_id=run_id)
        return Run._from_proto((await self._call("CancelRun", request)).run)

    # --- workers ----------------------------------------------------------------------------

    async def list_workers(self, *, limit: int = 1000) -> list[ConnectedWorker]:
        """The workers connected to the server that answers (one replica):
        what each serves and its free slots, in the order they connected.

            for worker in await client.list_workers():
                print(worker.identity, worker.tasks, worker.free_task_slots)
        """

        def page(size: int, token: str) -> worker_service_pb2.ListWorkersRequest:
            return worker_service_pb2.ListWorkersRequest(page_size=size, page_token=token)

        return await self._paged(
            "ListWorkers",
            page,
            lambda r: map(ConnectedWorker._from_proto, r.workers),
            limit,
            service="workers",
        )

    # --- threads ----------------------------------------------------------------------------

    async def create_thread(
        self,
        thread_id: str = "",
        *,
        metadata: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> Thread:
        """Create a thread (with a generated id when `thread_id` is empty). A
        `request_id` (generated when not given) makes a retry return the
        thread the first attempt created."""
        request = thread_service_pb2.CreateThreadRequest(
            thread_id=thread_id,
            metadata=to_struct(metadata),
            request_id=request_id or uuid.uuid4().hex,
        )
        return Thread._from_proto(
            (await self._call("CreateThread", request, service="threads")).thread
        )

    async def get_thread(self, thread_id: str) -> Thread:
        request = thread_service_pb2.GetThreadRequest(thread_id=thread_id)
        return Thread._from_proto(
            (await self._call("GetThread", request, service="threads")).thread
        )

    async def list_threads(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        status: ThreadStatus | str | None = None,
        limit: int = 100,
    ) -> list[Thread]:
        """Threads newest first, filtered by top-level metadata and status."""
        status_pb = (
            _THREAD_STATUS_PB[ThreadStatus(status)]
            if status
            else thread_pb2.THREAD_STATUS_UNSPECIFIED
        )

        def page(size: int, token: str) -> thread_service_pb2.ListThreadsRequest:
            return thread_service_pb2.ListThreadsRequest(
                page_size=size, page_token=token, metadata=to_struct(metadata), status=status_pb
            )

        return await self._paged(
            "ListThreads",
            page,
            lambda r: map(Thread._from_proto, r.threads),
            limit,
            service="threads",
        )

    async def delete_thread(self, thread_id: str) -> None:
        request = thread_service_pb2.DeleteThreadRequest(thread_id=thread_id)
        await self._call("DeleteThread", request, service="threads")

    async def prune_threads(
        self, thread_ids: Sequence[str], *, keep_latest: int | None = None, delete: bool = False
    ) -> list[str]:
        """Free storage: keep only the newest `keep_latest` checkpoints of each
        thread (default 1), or with `delete=True` delete the threads whole.
        Returns the ids of the threads that existed (unknown ids are skipped)."""
        pb = thread_service_pb2
        if delete:
            if keep_latest is not None:
                raise ValueError("keep_latest does not apply when deleting threads")
            request = pb.PruneThreadsRequest(
                thread_ids=thread_ids, strategy=pb.PRUNE_STRATEGY_DELETE
            )
        else:
            request = pb.PruneThreadsRequest(
                thread_ids=thread_ids,
                strategy=pb.PRUNE_STRATEGY_KEEP_LATEST,
                keep_latest=keep_latest or 0,
            )
        response = await self._call("PruneThreads", request, service="threads")
        return list(response.thread_ids)

    async def get_state(self, thread_id: str, *, checkpoint_id: str = "") -> StateSnapshot:
        """The thread's state at its latest checkpoint (or at `checkpoint_id`)."""
        request = thread_service_pb2.GetStateRequest(
            thread_id=thread_id, checkpoint_id=checkpoint_id
        )
        response = await self._call("GetState", request, service="threads")
        return StateSnapshot._from_proto(await self._all_tasks(thread_id, response.state))

    async def _all_tasks(
        self, thread_id: str, snapshot: thread_pb2.StateSnapshot
    ) -> thread_pb2.StateSnapshot:
        """`snapshot` with the tasks of its later pages (a state too large
        for one response comes in several)."""
        token = snapshot.next_tasks_page_token
        while token:
            request = thread_service_pb2.GetStateRequest(
                thread_id=thread_id,
                checkpoint_id=snapshot.config.checkpoint_id,
                tasks_page_token=token,
            )
            page = (await self._call("GetState", request, service="threads")).state
            snapshot.tasks.extend(page.tasks)
            token = page.next_tasks_page_token
        snapshot.next_tasks_page_token = ""
        return snapshot

    async def update_state(
        self,
        thread_id: str,
        values: dict[str, Any],
        *,
        as_node: str = "",
        checkpoint_id: str = "",
    ) -> StateSnapshot:
        """Write `values` into a graph thread's state as if `as_node` returned
        them (LangGraph's `update_state`). From an older `checkpoint_id`, this
        forks a new branch; `invoke(graph, None, thread_id=...)` continues it.

        UpdateState has no request_id, so this moves on to another address
        only when its server could not be reached at all: if the server went
        away mid-call, `UnavailableError` is raised, and the update may or
        may not have been applied (read the state before trying again)."""
        request = thread_service_pb2.UpdateStateRequest(
            thread_id=thread_id,
            checkpoint_id=checkpoint_id,
            values=to_value(values),
            as_node=as_node,
        )
        response = await self._call("UpdateState", request, service="threads", repeatable=False)
        return StateSnapshot._from_proto(await self._all_tasks(thread_id, response.state))

    async def get_state_history(
        self,
        thread_id: str,
        *,
        limit: int | None = None,
        before: str | None = None,
        filter: dict[str, Any] | None = None,
    ) -> list[StateSnapshot]:
        """The thread's checkpoints, newest first."""
        request = thread_service_pb2.GetStateHistoryRequest(
            thread_id=thread_id, limit=limit or 0, before=before or "", filter=to_struct(filter)
        )
        snapshots: list[StateSnapshot] = []
        while True:
            response = await self._call("GetStateHistory", request, service="threads")
            for state in response.states:
                snapshots.append(StateSnapshot._from_proto(await self._all_tasks(thread_id, state)))
            if not response.next_page_token:
                return snapshots
            request.page_token = response.next_page_token
