"""Client: start, stream, resume and inspect runs and threads.

    async with Client("127.0.0.1:50051") as client:
        run = await client.invoke("workflow", {"topic": "cats"}, thread_id="t1")
        if run.interrupts:
            run = await client.invoke("workflow", Command(resume=True), thread_id="t1")
        print(run.output)

`SyncClient` offers the same methods for scripts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import grpc

from cairn._errors import RunFailedError, from_rpc_error
from cairn._types import (
    _DURABILITY_PB,
    _RUN_STATE_PB,
    _STREAM_MODE_PB,
    _THREAD_STATUS_PB,
    Command,
    Durability,
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
    thread_pb2,
    thread_service_pb2,
    thread_service_pb2_grpc,
)


class Named(Protocol):
    """An entrypoint or a compiled graph: anything served under a name."""

    @property
    def name(self) -> str: ...


Target = str | Named
_PAGE = 200


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
    answer with `await session.resume(value)` and keep iterating."""

    def __init__(
        self,
        call: Any,
        requests: asyncio.Queue[run_service_pb2.SessionRequest | None],
        subgraphs: bool,
    ):
        self._call = call
        self._requests = requests
        self._subgraphs = subgraphs
        self.interrupts: tuple[Any, ...] = ()

    def __aiter__(self) -> AsyncIterator[RunEvent]:
        return self._follow()

    async def _follow(self) -> AsyncIterator[RunEvent]:
        async for event in _events(self._call, self._subgraphs):
            if event.run is not None:
                self.interrupts = event.run.interrupts
            yield event

    async def resume(self, resume: Any) -> None:
        """Answer the pending interrupts (a value, or a Command)."""
        command = resume if isinstance(resume, Command) else Command(resume=resume)
        self._requests.put_nowait(run_service_pb2.SessionRequest(resume=command._to_proto()))

    async def close(self) -> None:
        self._requests.put_nowait(None)


class Client:
    """Async client of the Cairn service."""

    def __init__(self, address: str = "127.0.0.1:50051", *, timeout: float | None = None) -> None:
        self.address = address
        self.timeout = timeout
        self._channel = grpc.aio.insecure_channel(
            address,
            options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ],
        )
        self._runs = run_service_pb2_grpc.RunServiceStub(self._channel)
        self._threads = thread_service_pb2_grpc.ThreadServiceStub(self._channel)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, rpc: Any, request: Any) -> Any:
        try:
            return await rpc(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None

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
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "thread_id": thread_id,
            "target": _target_name(target),
            "metadata": to_struct(metadata),
            "request_id": request_id or "",
            "create_thread": create_thread,
            "checkpoint_id": checkpoint_id or "",
            "recursion_limit": recursion_limit or 0,
        }
        if durability is not None:
            fields["durability"] = _DURABILITY_PB[Durability(durability)]
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
    ) -> Run:
        """Run `target` on a thread and wait until it finishes or stops at an
        interrupt. `input` may be a `Command` to resume, or None to retry the
        thread's unfinished run (as in LangGraph). `checkpoint_id` starts from
        an older checkpoint instead of the latest, forking a new branch (time
        travel). `recursion_limit` caps a graph run's supersteps (default 25).
        Raises RunFailedError when the run fails."""
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
            )
        )
        response = await self._call(self._runs.Invoke, request)
        run = Run._from_proto(response.run)
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
            ),
        )
        async for event in _events(self._runs.Stream(request, timeout=self.timeout), subgraphs):
            yield event

    async def join(
        self, run_id: str, *, after_event_id: int = 0, subgraphs: bool = False
    ) -> AsyncIterator[RunEvent]:
        """Yield a run's events after `after_event_id`, live while it runs."""
        request = run_service_pb2.JoinRunRequest(run_id=run_id, after_event_id=after_event_id)
        call = self._runs.JoinRun(request, timeout=self.timeout)
        async for event in _events(call, subgraphs):
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
        subgraphs: bool = False,
    ) -> Session:
        """Start an interactive session (see `Session`)."""
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
            ),
        )
        requests: asyncio.Queue[run_service_pb2.SessionRequest | None] = asyncio.Queue()
        requests.put_nowait(run_service_pb2.SessionRequest(start=start))

        async def outgoing() -> AsyncIterator[run_service_pb2.SessionRequest]:
            while (message := await requests.get()) is not None:
                yield message

        call = self._runs.Session(outgoing(), timeout=self.timeout)
        return Session(call, requests, subgraphs)

    async def get_run(self, run_id: str) -> Run:
        response = await self._call(self._runs.GetRun, run_service_pb2.GetRunRequest(run_id=run_id))
        return Run._from_proto(response.run)

    async def list_runs(
        self, thread_id: str, *, state: RunState | str | None = None, limit: int = 100
    ) -> list[Run]:
        """A thread's runs, newest first."""
        runs: list[Run] = []
        token = ""
        while len(runs) < limit:
            request = run_service_pb2.ListRunsRequest(
                thread_id=thread_id,
                page_size=min(_PAGE, limit - len(runs)),
                page_token=token,
                state=_RUN_STATE_PB[RunState(state)] if state else run_pb2.RUN_STATE_UNSPECIFIED,
            )
            response = await self._call(self._runs.ListRuns, request)
            runs.extend(Run._from_proto(r) for r in response.runs)
            token = response.next_page_token
            if not token:
                break
        return runs

    async def cancel_run(self, run_id: str) -> Run:
        request = run_service_pb2.CancelRunRequest(run_id=run_id)
        return Run._from_proto((await self._call(self._runs.CancelRun, request)).run)

    # --- threads ----------------------------------------------------------------------------

    async def create_thread(
        self, thread_id: str = "", *, metadata: dict[str, Any] | None = None
    ) -> Thread:
        request = thread_service_pb2.CreateThreadRequest(
            thread_id=thread_id, metadata=to_struct(metadata)
        )
        return Thread._from_proto((await self._call(self._threads.CreateThread, request)).thread)

    async def get_thread(self, thread_id: str) -> Thread:
        request = thread_service_pb2.GetThreadRequest(thread_id=thread_id)
        return Thread._from_proto((await self._call(self._threads.GetThread, request)).thread)

    async def list_threads(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        status: ThreadStatus | str | None = None,
        limit: int = 100,
    ) -> list[Thread]:
        """Threads newest first, filtered by top-level metadata and status."""
        threads: list[Thread] = []
        token = ""
        while len(threads) < limit:
            request = thread_service_pb2.ListThreadsRequest(
                page_size=min(_PAGE, limit - len(threads)),
                page_token=token,
                metadata=to_struct(metadata),
                status=_THREAD_STATUS_PB[ThreadStatus(status)]
                if status
                else thread_pb2.THREAD_STATUS_UNSPECIFIED,
            )
            response = await self._call(self._threads.ListThreads, request)
            threads.extend(Thread._from_proto(t) for t in response.threads)
            token = response.next_page_token
            if not token:
                break
        return threads

    async def delete_thread(self, thread_id: str) -> None:
        request = thread_service_pb2.DeleteThreadRequest(thread_id=thread_id)
        await self._call(self._threads.DeleteThread, request)

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
        response = await self._call(self._threads.PruneThreads, request)
        return list(response.thread_ids)

    async def get_state(self, thread_id: str, *, checkpoint_id: str = "") -> StateSnapshot:
        """The thread's state at its latest checkpoint (or at `checkpoint_id`)."""
        request = thread_service_pb2.GetStateRequest(
            thread_id=thread_id, checkpoint_id=checkpoint_id
        )
        return StateSnapshot._from_proto((await self._call(self._threads.GetState, request)).state)

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
        forks a new branch; `invoke(graph, None, thread_id=...)` continues it."""
        request = thread_service_pb2.UpdateStateRequest(
            thread_id=thread_id,
            checkpoint_id=checkpoint_id,
            values=to_value(values),
            as_node=as_node,
        )
        response = await self._call(self._threads.UpdateState, request)
        return StateSnapshot._from_proto(response.state)

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
        response = await self._call(self._threads.GetStateHistory, request)
        return [StateSnapshot._from_proto(s) for s in response.states]
