"""RunService."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from cairn.v1 import run_pb2, run_service_pb2, run_service_pb2_grpc
from cairn_server.api import convert, scope
from cairn_server.api.errors import streaming, unary
from cairn_server.api.threads import page_size, page_token_errors
from cairn_server.api.values import check_size, struct_to_json, to_json
from cairn_server.domain import (
    DEFAULT_RECURSION_LIMIT,
    Durability,
    MultitaskStrategy,
    RunRecord,
    RunState,
    StreamMode,
)
from cairn_server.errors import error_for
from cairn_server.runtime.handle import RunHandle
from cairn_server.runtime.manager import RunManager, StartRun
from cairn_server.tracing import caller_context

pb = run_service_pb2

StartRequest = pb.InvokeRequest | pb.StreamRequest


class RunServicer(run_service_pb2_grpc.RunServiceServicer):
    def __init__(
        self,
        runs: RunManager,
        *,
        max_payload_bytes: int,
        max_runs_per_namespace: int | None = None,
    ) -> None:
        self._runs = runs
        self._limit = max_payload_bytes
        self._max_runs = max_runs_per_namespace

    # --- requests -------------------------------------------------------------

    def _start_run(self, request: StartRequest, modes: list[StreamMode]) -> StartRun:
        if not request.thread_id:
            raise error_for("INVALID_ARGUMENT", "thread_id is required", field="thread_id")
        has_input = request.HasField("input")
        has_command = request.HasField("command")
        if has_input and has_command:
            raise error_for(
                "INVALID_ARGUMENT", "set either input or command, not both", field="command"
            )
        start = StartRun(
            thread_id=scope.thread_key(request.thread_id),
            target=request.target,
            durability=convert.enum_value(convert.DURABILITY, request.durability, "durability")
            if request.durability
            else Durability.ASYNC,
            stream_modes=modes,
            metadata=struct_to_json(request.metadata, "metadata"),
            request_id=request.request_id,
            create_thread=request.create_thread,
            checkpoint_id=request.checkpoint_id,
            recursion_limit=request.recursion_limit or DEFAULT_RECURSION_LIMIT,
            multitask_strategy=convert.enum_value(
                convert.MULTITASK_STRATEGY, request.multitask_strategy, "multitask_strategy"
            )
            if request.multitask_strategy
            else MultitaskStrategy.REJECT,
        )
        if request.recursion_limit < 0:
            raise error_for(
                "INVALID_ARGUMENT",
                "recursion_limit must not be negative",
                field="recursion_limit",
            )
        check_size(request.metadata.ByteSize(), self._limit, "metadata")
        if has_input:
            check_size(request.input.ByteSize(), self._limit, "input")
            start.has_input, start.input = True, to_json(request.input, "input")
        if has_command:
            self._apply_command(start, request.command)
        return start

    def _apply_command(self, start: StartRun, command: run_pb2.Command) -> None:
        check_size(command.ByteSize(), self._limit, "command")
        kind = command.WhichOneof("resume_kind")
        if kind is None:
            raise error_for("INVALID_ARGUMENT", "command has no resume value", field="command")
        start.has_resume = True
        if kind == "resume":
            start.resume = to_json(command.resume, "command.resume")
        else:
            start.resume_by_id = {
                key: to_json(value, "command.resume_map")
                for key, value in command.resume_map.values.items()
            }
            if not start.resume_by_id:
                raise error_for("INVALID_ARGUMENT", "resume_map is empty", field="command")

    @staticmethod
    def _modes(request: pb.StreamRequest) -> list[StreamMode]:
        modes = [
            convert.enum_value(convert.STREAM_MODE, mode, "stream_modes")
            for mode in request.stream_modes
        ]
        return list(dict.fromkeys(modes)) or [StreamMode.UPDATES]

    async def _follow(self, started: RunHandle | RunRecord) -> AsyncIterator[run_pb2.RunEvent]:
        run_id = started.run_id
        async for event in self._runs.follow(run_id):
            yield convert.event_pb(event)

    # --- RPCs -------------------------------------------------------------------

    async def _start(self, start: StartRun) -> RunHandle | RunRecord:
        """Start a run, within the namespace's limit of active runs here."""
        self._runs.check_room(scope.namespace(), self._max_runs)
        return await self._runs.start(start)

    @unary
    async def Invoke(self, request: pb.InvokeRequest, context: Any) -> pb.InvokeResponse:
        start = self._start_run(request, [])
        start.trace_context = caller_context(context)
        started = await self._start(start)
        run = await self._runs.outcome(started.run_id)
        return pb.InvokeResponse(run=convert.run_pb(run))

    @streaming
    async def Stream(
        self, request: pb.StreamRequest, context: Any
    ) -> AsyncIterator[pb.StreamResponse]:
        start = self._start_run(request, self._modes(request))
        start.trace_context = caller_context(context)
        started = await self._start(start)
        async for event in self._follow(started):
            yield pb.StreamResponse(event=event)

    @streaming
    async def Session(
        self, request_iterator: AsyncIterator[pb.SessionRequest], context: Any
    ) -> AsyncIterator[pb.SessionResponse]:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("kind") != "start":
            raise error_for(
                "INVALID_ARGUMENT", "a session starts with a start message", field="start"
            )
        template = first.start
        start = self._start_run(template, self._modes(template))
        trace_context = caller_context(context)
        while True:
            start.trace_context = trace_context
            started = await self._start(start)
            last_state = None
            async for event in self._follow(started):
                if event.HasField("run"):
                    last_state = convert.RUN_STATE[event.run.state]
                yield pb.SessionResponse(event=event)
            if last_state is not RunState.INTERRUPTED:
                return
            message = await anext(aiter(request_iterator), None)
            if message is None:
                return
            if message.WhichOneof("kind") != "resume":
                raise error_for(
                    "INVALID_ARGUMENT", "after an interrupt, send a resume command", field="resume"
                )
            start = self._start_run(
                pb.StreamRequest(
                    thread_id=template.thread_id,
                    target=template.target,
                    command=message.resume,
                    durability=template.durability,
                    metadata=template.metadata,
                    stream_modes=template.stream_modes,
                    recursion_limit=template.recursion_limit,
                    multitask_strategy=template.multitask_strategy,
                ),
                self._modes(template),
            )

    @streaming
    async def JoinRun(
        self, request: pb.JoinRunRequest, context: Any
    ) -> AsyncIterator[pb.JoinRunResponse]:
        if not request.run_id:
            raise error_for("INVALID_ARGUMENT", "run_id is required", field="run_id")
        scope.owned_run(await self._runs.get_run(request.run_id))
        async for event in self._runs.follow(request.run_id, request.after_event_id):
            yield pb.JoinRunResponse(event=convert.event_pb(event))

    @unary
    async def GetRun(self, request: pb.GetRunRequest, context: Any) -> pb.GetRunResponse:
        run = scope.owned_run(await self._runs.get_run(request.run_id))
        return pb.GetRunResponse(run=convert.run_pb(run))

    @unary
    async def ListRuns(self, request: pb.ListRunsRequest, context: Any) -> pb.ListRunsResponse:
        # No thread: the runs of every thread of the caller's namespace, and
        # of no other (the store filters by it, run_pb unscopes the ids).
        thread_key = None
        if request.thread_id:
            thread_key = scope.thread_key(request.thread_id)
            if await self._runs.store.get_thread(thread_key) is None:
                raise error_for(
                    "THREAD_NOT_FOUND",
                    f"thread {request.thread_id!r} does not exist",
                    thread_id=request.thread_id,
                )
        state = None
        if request.state != run_pb2.RUN_STATE_UNSPECIFIED:
            state = convert.enum_value(convert.RUN_STATE, request.state, "state")
        with page_token_errors():
            runs, token = await self._runs.list_runs(
                thread_key,
                namespace=scope.namespace(),
                limit=page_size(request.page_size),
                page_token=request.page_token,
                state=state,
                waiting=request.waiting,
            )
        return pb.ListRunsResponse(runs=[convert.run_pb(r) for r in runs], next_page_token=token)

    @unary
    async def CancelRun(self, request: pb.CancelRunRequest, context: Any) -> pb.CancelRunResponse:
        scope.owned_run(await self._runs.get_run(request.run_id))
        return pb.CancelRunResponse(run=convert.run_pb(await self._runs.cancel(request.run_id)))
