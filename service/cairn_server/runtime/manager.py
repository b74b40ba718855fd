"""RunManager: starts, resumes, recovers, cancels and follows runs.

Several replicas may share one store (DESIGN.md section 7). Each drives the
runs it holds a lease on (runtime/replica.py keeps the leases and claims the
runs of replicas that died, which are resumed here from their last
checkpoint). A run driven elsewhere is followed, awaited and cancelled
through the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from cairn_server import heap, logs, namespaces, tracing
from cairn_server.dispatch.dispatcher import Dispatcher
from cairn_server.dispatch.messages import Assignment
from cairn_server.domain import (
    DEFAULT_RECURSION_LIMIT,
    CheckpointRecord,
    Durability,
    ErrorRecord,
    EventRecord,
    Json,
    MultitaskStrategy,
    PendingWrite,
    RunRecord,
    RunState,
    StreamMode,
    ThreadRecord,
    ThreadStatus,
    WaitReason,
)
from cairn_server.engine import checkpoints
from cairn_server.engine import graph as graph_engine
from cairn_server.engine.decisions import Decision
from cairn_server.engine.functional import FunctionalRun
from cairn_server.engine.graph import GraphRun
from cairn_server.engine.graph_model import GraphModel, graph_from_json, graph_to_json
from cairn_server.engine.langgraph_state import langgraph_state_view
from cairn_server.engine.nesting import NestedRuns
from cairn_server.engine.state import StateView, functional_state_view, graph_state_view
from cairn_server.errors import ServiceError, error_for
from cairn_server.ids import new_id
from cairn_server.metrics import Metrics, RunSample
from cairn_server.runtime import inbox
from cairn_server.runtime.events import first_event_id
from cairn_server.runtime.handle import THREAD_STATUS_AT_END, RunAbandoned, RunHandle
from cairn_server.runtime.replica import DEFAULT_LEASE_TTL, ReplicaLeases
from cairn_server.store import (
    Lease,
    LeaseLost,
    Store,
    StoreUnavailable,
    ThreadBusy,
    ThreadChanged,
    ThreadStatusChange,
    WriteBatch,
)
from cairn_server.store.leases import STOP_CANCEL
from cairn_server.timers.waker import TimerWaker
from cairn_server.tracing import RunTrace

log = logging.getLogger(__name__)

TaskTreeEngine = FunctionalRun | GraphRun
_ACTIVE = (RunState.PENDING, RunState.RUNNING)
# Reading a run driven by another replica: the wait between polls of the
# store grows from the first value to the second while nothing changes.
_POLL_FIRST, _POLL_MAX = 0.02, 0.5
# A start reads its thread again at most this many times when the thread
# changes between its read and its commit.
_MAX_CHANGES = 8
# CancelRun answers within this many seconds: with the cancelled run, or
# with CANCEL_PENDING while its store or its replica is slow to answer.
CANCEL_WAIT = 1.0
# A run that ended with at least this many tasks in memory (and their
# results) gives the memory it freed back to the system (cairn_server/heap.py).
_LARGE_RUN_TASKS = 500


@dataclass(slots=True)
class StartRun:
    """A request to start, resume or retry a run (see RunService)."""

    thread_id: str
    target: str = ""
    has_input: bool = False
    input: Json = None
    has_resume: bool = False
    resume: Json = None
    resume_by_id: dict[str, Json] | None = None
    durability: Durability = Durability.ASYNC
    stream_modes: list[StreamMode] = field(default_factory=list)
    metadata: dict[str, Json] = field(default_factory=dict)
    request_id: str = ""
    create_thread: bool = False
    checkpoint_id: str = ""
    recursion_limit: int = DEFAULT_RECURSION_LIMIT
    multitask_strategy: MultitaskStrategy = MultitaskStrategy.REJECT
    trace_context: dict[str, str] = field(default_factory=dict)
    """The caller's W3C trace context (not part of what the request asks for)."""
    timed_out: frozenset[str] = frozenset()
    """Interrupt ids the service answers because they timed out (internal)."""

    def fingerprint(self) -> str:
        """A hash of what the request asks for, to recognise its retries."""
        data = [
            self.thread_id,
            self.target,
            self.has_input,
            self.input,
            self.has_resume,
            self.resume,
            self.resume_by_id,
            self.durability.value,
            [m.value for m in self.stream_modes],
            self.metadata,
            self.create_thread,
            self.checkpoint_id,
            self.recursion_limit,
        ]
        if self.multitask_strategy is not MultitaskStrategy.REJECT:
            data.append(self.multitask_strategy.value)
        if self.timed_out:
            data.append(sorted(self.timed_out))
        encoded = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(encoded.encode()).hexdigest()


class RunManager:
    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        replica_id: str = "",
        lease_ttl: float = DEFAULT_LEASE_TTL,
        metrics: Metrics | None = None,
        timer_clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.clock = clock
        self.timer_clock = timer_clock
        """Durable time's clock (timers/clock.py): when sleeps, interrupt
        timeouts and schedules are due."""
        self.metrics = metrics if metrics is not None else Metrics()
        self.leases = ReplicaLeases(
            store,
            replica_id=replica_id or new_id(),
            lease_ttl=lease_ttl,
            clock=clock,
            driven=lambda: self._active,
            resume=self._resume,
            metrics=self.metrics,
        )
        self.dispatcher = Dispatcher(
            on_assigned=self._assigned,
            on_lost=self._lost,
            on_waiting=self._waiting,
            on_timed_out=self._timed_out,
            metrics=self.metrics,
        )
        self.timers = TimerWaker(
            store,
            replica_id=self.leases.replica_id,
            clock=timer_clock,
            wake=self._resume,
            answer=self._answer_timed_out,
            metrics=self.metrics,
        )
        self.metrics.watch_runs(self._run_samples)
        self._active: dict[str, RunHandle] = {}
        self._by_thread: dict[str, RunHandle] = {}
        self._starting: set[str] = set()
        self._resuming: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._targets: set[str] = set()
        """Entrypoint and graph names workers registered, scoped by namespace."""
        self._graphs: dict[str, GraphModel] = {}
        """Registered graphs by scoped name (namespaces.scoped)."""
        self._closing = False

    @property
    def replica_id(self) -> str:
        return self.leases.replica_id

    async def open(self) -> None:
        """Load the registrations, take back the runs an earlier life of this
        replica held and those of expired replicas, and start renewing."""
        await self._load_targets()
        for run, lease in await self.leases.open():
            await self._resume(run, lease)
        self.leases.start()
        self.timers.start()

    async def _load_targets(self) -> None:
        self._targets = await self.store.known_targets()
        self._graphs = {
            name: graph_from_json(spec) for name, spec in (await self.store.known_graphs()).items()
        }

    async def drain(self, grace: float) -> None:
        """Graceful shutdown, first half: take no new run, send no new task,
        give the tasks in flight up to `grace` seconds to finish and be
        recorded, then store what runs hold in memory."""
        self._closing = True
        self.leases.claiming = False
        await self.timers.close()
        handles = list(self._active.values())
        for handle in handles:
            handle.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        run_ids = {handle.run_id for handle in handles}
        while self.dispatcher.tasks_in_flight(run_ids) and loop.time() < deadline:
            released = self.dispatcher.released
            released.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(released.wait(), deadline - loop.time())
        for handle in handles:
            try:
                await handle.flush()
            except Exception:
                log.warning(
                    "run %s: storing its progress at shutdown failed",
                    handle.run_id,
                    extra=logs.ids(run=handle.run),
                )

    async def close(self) -> None:
        """Stop driving runs and release their leases: they stay RUNNING and
        another replica (or this one's next start) resumes them."""
        self._closing = True
        self.leases.claiming = False
        await self.timers.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.leases.close()

    # --- registration -----------------------------------------------------------

    async def register_targets(self, names: list[str]) -> None:
        new = [n for n in names if n not in self._targets]
        if new:
            await self.store.commit(WriteBatch(targets=new))
            self._targets.update(new)

    async def register_graphs(
        self, graphs: list[GraphModel], tasks: set[str], *, namespace: str = namespaces.DEFAULT
    ) -> None:
        """Remember the graphs a worker of `namespace` serves (the latest
        registration wins), after checking that the worker serves their nodes
        and routers (`tasks`) and that their subgraphs are known in the
        namespace and nest without a cycle."""
        known = {
            namespaces.unscoped(key): graph
            for key, graph in self._graphs.items()
            if namespaces.namespace_of(key) == namespace
        }
        known.update((g.name, g) for g in graphs)
        for graph in graphs:
            graph.check_served(tasks, set(known))
            _check_nesting(graph, known)
        keys = {g.name: namespaces.scoped(namespace, g.name) for g in graphs}
        new = [g for g in graphs if self._graphs.get(keys[g.name]) != g]
        if not new:
            return
        specs = [(keys[g.name], graph_to_json(g)) for g in new]
        await self.store.commit(WriteBatch(targets=[keys[g.name] for g in new], graphs=specs))
        for graph in new:
            self._graphs[keys[graph.name]] = graph
            self._targets.add(keys[graph.name])

    def _graph(self, thread_id: str, name: str) -> GraphModel | None:
        """The graph `name` of the namespace of `thread_id`."""
        return self._graphs.get(namespaces.beside(thread_id, name))

    def _graphs_of(self, thread_id: str) -> Callable[[str], GraphModel | None]:
        """Subgraph lookup for the engine: names of the thread's namespace."""
        return functools.partial(self._graph, thread_id)

    async def registered_graph(self, namespace: str, name: str) -> GraphModel | None:
        """The graph `name` that a worker of `namespace` last registered, on
        this replica or, read from the store, on any other."""
        key = namespaces.scoped(namespace, name)
        graph = self._graphs.get(key)
        if graph is not None:
            return graph
        spec = (await self.store.known_graphs()).get(key)
        return graph_from_json(spec) if spec is not None else None

    async def update_state(
        self, thread_id: str, checkpoint_id: str, values: Json, as_node: str
    ) -> CheckpointRecord:
        """UpdateState: a new checkpoint from `checkpoint_id` (or the latest)."""
        if thread_id in self._by_thread or thread_id in self._starting:
            raise error_for(
                "THREAD_BUSY", f"thread {thread_id!r} has an active run", thread_id=thread_id
            )
        self._starting.add(thread_id)
        try:
            thread = await self.store.get_thread(thread_id)
            if thread is not None and thread.status is ThreadStatus.BUSY:
                raise error_for(
                    "THREAD_BUSY", f"thread {thread_id!r} has an active run", thread_id=thread_id
                )
            base = await self.store.get_checkpoint(thread_id, "", checkpoint_id or None)
            if base is None:
                raise error_for(
                    "CHECKPOINT_NOT_FOUND",
                    f"thread {thread_id!r} has no checkpoint {checkpoint_id!r}",
                    thread_id=thread_id,
                    checkpoint_id=checkpoint_id,
                )
            _check_native(base)
            graph = self._graph(thread_id, str(base.metadata.get("target", "")))
            if graph is None:
                raise error_for(
                    "NOT_A_GRAPH", f"thread {thread_id!r} does not run a graph", thread_id=thread_id
                )
            steps = GraphRun(graph=graph, checkpoint=base, new_checkpoint_id=new_id, now=self.clock)
            checkpoint = steps.update(values, as_node)
            await self.store.commit(WriteBatch(checkpoints=[checkpoint]))
            return checkpoint
        finally:
            self._starting.discard(thread_id)

    # --- worker messages ----------------------------------------------------------

    def post(self, run_id: str, message: inbox.Message) -> None:
        handle = self._active.get(run_id)
        if handle is not None:
            handle.post(message)

    def _assigned(self, assignment: Assignment) -> None:
        handle = self._active.get(assignment.run_id)
        if handle is not None:
            handle.trace.taken(assignment.task_id)  # its queue wait ends
        self.post(assignment.run_id, inbox.Assigned(assignment.task_id))

    def _lost(self, assignment: Assignment) -> None:
        self.post(assignment.run_id, inbox.Lost(assignment.task_id))

    def _timed_out(self, assignment: Assignment, error: ErrorRecord) -> None:
        self.post(assignment.run_id, inbox.TimedOut(assignment.task_id, error))

    def _waiting(self, assignment: Assignment, _reason: WaitReason) -> None:
        self.post(
            assignment.run_id, inbox.Waiting(assignment.task_id, assignment.name, assignment.path)
        )

    # --- runs ------------------------------------------------------------------------

    def active_in(self, namespace: str) -> int:
        """How many runs of the namespace this replica drives now."""
        return sum(
            namespaces.namespace_of(h.run.thread_id) == namespace for h in self._active.values()
        )

    def check_room(self, namespace: str, limit: int | None) -> None:
        """Raise TOO_MANY_RUNS when the namespace drives `limit` runs here
        already (`--max-runs-per-namespace`; None: no limit)."""
        if limit is None:
            return
        active = self.active_in(namespace)
        if active >= limit:
            raise error_for(
                "TOO_MANY_RUNS",
                f"namespace {namespace!r} has {active} active runs on this replica;"
                f" the limit is {limit}",
                namespace=namespace,
                limit=str(limit),
            )

    def _run_samples(self) -> list[RunSample]:
        """The runs driven here, as cairn_runs_active and cairn_runs_waiting
        read them at scrape time (a run whose end was stored is not active)."""
        return [
            RunSample(
                namespaces.namespace_of(h.run.thread_id),
                frozenset(w.reason.value for w in h.run.waiting),
            )
            for h in self._active.values()
            if not h.done.done()
        ]

    def active(self, run_id: str) -> RunHandle | None:
        return self._active.get(run_id)

    async def list_runs(
        self,
        thread_id: str | None,
        *,
        namespace: str,
        limit: int,
        page_token: str = "",
        state: RunState | None = None,
        waiting: bool = False,
    ) -> tuple[list[RunRecord], str]:
        """A page of the store's `list_runs` (a thread's runs, or with
        thread_id None those of every thread of `namespace`), each run this
        replica drives as it is now, which its row may not show yet. A run
        that no longer matches `state` or `waiting` then is left out: the
        page may be short, and its token goes on where the store's ended."""
        stored, token = await self.store.list_runs(
            thread_id,
            limit=limit,
            page_token=page_token,
            state=state,
            waiting=waiting,
            namespace=namespace,
        )
        runs = [h.run if (h := self._active.get(r.run_id)) else r for r in stored]
        matching = [
            r for r in runs if (state is None or r.state is state) and (r.waiting or not waiting)
        ]
        return matching, token

    async def start(self, request: StartRun) -> RunHandle | RunRecord:
        """Start a run; returns its handle, or the finished run when a retried
        request_id names one."""
        self._check_open()
        thread_id = request.thread_id
        if request.request_id:
            earlier = await self.store.find_run_by_request_id(thread_id, request.request_id)
            if earlier is not None:
                if earlier.request_hash != request.fingerprint():
                    raise error_for(
                        "REQUEST_ID_REUSED",
                        f"request_id {request.request_id!r} started a different run",
                        request_id=request.request_id,
                        run_id=earlier.run_id,
                    )
                return self._active.get(earlier.run_id) or earlier
        changes = 0
        while True:
            active = self._busy_with(thread_id)
            if active is None:
                self._starting.add(thread_id)
                try:
                    handle, first = await self._prepare(request)
                except ThreadBusy:
                    active = ""  # a run that another replica drives
                except ThreadChanged:
                    # A run started or ended on the thread since it was read
                    # (another resume of the same interrupt, say): read again.
                    changes += 1
                    if changes < _MAX_CHANGES:
                        continue
                    active = ""
                else:
                    self._launch(handle, first)
                    self.metrics.run_started(handle.run.target, namespaces.namespace_of(thread_id))
                    return handle
                finally:
                    self._starting.discard(thread_id)
            if request.multitask_strategy is MultitaskStrategy.REJECT:
                raise error_for(
                    "THREAD_BUSY", f"thread {thread_id!r} has an active run", thread_id=thread_id
                )
            await self._make_way(thread_id, active, request.multitask_strategy)
            self._check_open()

    def _busy_with(self, thread_id: str) -> str | None:
        """The id of the thread's run driven here, '' while one starts here,
        None when this replica knows of none."""
        handle = self._by_thread.get(thread_id)
        if handle is not None:
            return handle.run_id
        return "" if thread_id in self._starting else None

    async def _make_way(self, thread_id: str, run_id: str, strategy: MultitaskStrategy) -> None:
        """Wait for the thread's active run to end (enqueue), or stop it
        (interrupt) and delete it (rollback)."""
        if not run_id:
            runs, _ = await self.store.list_runs(thread_id, limit=1, state=RunState.RUNNING)
            if not runs:  # still starting: its run is not stored yet
                await asyncio.sleep(_POLL_FIRST)
                return
            run_id = runs[0].run_id
        if strategy is MultitaskStrategy.ENQUEUE:
            await self.outcome(run_id)
            return
        try:
            await self.cancel(run_id, within=None)
        except ServiceError as error:
            if error.reason != "RUN_FINISHED":
                raise
        if strategy is MultitaskStrategy.ROLLBACK:
            await self.store.delete_run(thread_id, run_id)

    async def _prepare(self, request: StartRun) -> tuple[RunHandle, Callable[[], list[Decision]]]:
        now = self.clock()
        thread_id = request.thread_id
        batch = WriteBatch()
        # Read at once: the second read overlaps the first one's round trip.
        thread, latest = await asyncio.gather(
            self.store.get_thread(thread_id),
            self.store.get_checkpoint(thread_id, "", request.checkpoint_id or None),
        )
        if thread is None:
            if not request.create_thread:
                raise error_for(
                    "THREAD_NOT_FOUND", f"thread {thread_id!r} does not exist", thread_id=thread_id
                )
            batch.threads.append(ThreadRecord(thread_id, now, now, {}, ThreadStatus.BUSY))
        if latest is None and request.checkpoint_id:
            raise error_for(
                "CHECKPOINT_NOT_FOUND",
                f"thread {thread_id!r} has no checkpoint {request.checkpoint_id!r}",
                thread_id=thread_id,
                checkpoint_id=request.checkpoint_id,
            )
        if latest is not None:
            _check_native(latest)
        run_id = new_id()
        writes: list[PendingWrite] = []
        if request.has_input:
            target = request.target
            if not target:
                raise error_for("INVALID_ARGUMENT", "target is required to start a run")
            key = namespaces.beside(thread_id, target)
            if key not in self._targets:
                await self._load_targets()  # registered with another replica?
            if key not in self._targets:
                raise error_for(
                    "TARGET_NOT_FOUND", f"no worker serves entrypoint {target!r}", target=target
                )
            graph = self._graph(thread_id, target)
            if graph is None:
                checkpoint = checkpoints.input_checkpoint(
                    thread_id=thread_id,
                    checkpoint_id=new_id(),
                    parent=latest,
                    input=request.input,
                    run_id=run_id,
                    target=target,
                    metadata=request.metadata,
                    now=now,
                )
            else:
                if not isinstance(request.input, dict):
                    raise error_for(
                        "INVALID_ARGUMENT",
                        f"the input of graph {target!r} must be an object of state keys",
                        field="input",
                    )
                checkpoint = graph_engine.input_checkpoint(
                    graph=graph,
                    checkpoint_id=new_id(),
                    thread_id=thread_id,
                    parent=latest,
                    input=request.input,
                    run_id=run_id,
                    metadata=request.metadata,
                    now=now,
                )
        else:
            if latest is None or not checkpoints.is_unfinished(latest):
                reason = "NO_PENDING_INTERRUPT" if request.has_resume else "NOTHING_TO_RESUME"
                raise error_for(
                    reason, f"thread {thread_id!r} has nothing to resume", thread_id=thread_id
                )
            checkpoint = latest
            target = str(latest.metadata.get("target", ""))
            if request.target and request.target != target:
                raise error_for(
                    "INVALID_ARGUMENT",
                    f"the thread's unfinished run is of {target!r}, not {request.target!r}",
                    target=request.target,
                )
            writes = await self.store.get_writes(thread_id, "", checkpoint.checkpoint_id)
        run = RunRecord(
            run_id=run_id,
            thread_id=thread_id,
            target=target,
            state=RunState.RUNNING,
            durability=request.durability,
            created_at=now,
            updated_at=now,
            checkpoint_id=checkpoint.checkpoint_id,
            metadata=request.metadata,
            stream_modes=request.stream_modes,
            request_id=request.request_id,
            request_hash=request.fingerprint() if request.request_id else "",
            recursion_limit=request.recursion_limit,
        )
        trace = await self._trace(request, run, checkpoint)
        engine = self._engine(checkpoint, run, writes)
        await self._load_subgraphs(thread_id, engine)
        first: list[Decision] = []
        if request.has_resume:
            first = engine.resolve_resume(
                value=request.resume, by_id=request.resume_by_id, timed_out=request.timed_out
            )
        first += engine.wake_timers(self.timer_clock())  # timers due while it was interrupted
        batch.runs.append(run)
        batch.thread_statuses.append(ThreadStatusChange(thread_id, ThreadStatus.BUSY, now))
        batch.lease = Lease(run_id, self.replica_id, 1)
        if thread is not None:
            # Atomically: no other replica started one, nor any run started
            # or ended on the thread since it was read.
            batch.claim_thread, batch.claim_thread_at = thread_id, thread.updated_at
            if thread.status is ThreadStatus.INTERRUPTED:
                batch.clear_interrupt_timers = thread_id  # this run answers or drops them
        deferred = WriteBatch()
        if request.has_input:
            (deferred if request.durability is Durability.EXIT else batch).checkpoints.append(
                checkpoint
            )
        await self.store.commit(batch)
        handle = RunHandle(
            run=run,
            engine=engine,
            checkpoint=checkpoint,
            previous=checkpoints.previous_value(checkpoint),
            store=self.store,
            dispatcher=self.dispatcher,
            first_event_id=1,
            clock=self.clock,
            timer_clock=self.timer_clock,
            pending=deferred,
            metrics=self.metrics,
            lease=batch.lease,
            trace=trace,
        )
        return handle, lambda: first + engine.start()

    async def _trace(
        self, request: StartRun, run: RunRecord, checkpoint: CheckpointRecord
    ) -> RunTrace:
        """The spans of a new run: a child of the caller's span, or for a run
        that continues an unfinished one (a resume), of the span of the run
        that stopped, so that a resume continues its trace."""
        if request.has_input or not (tracing.enabled() or request.trace_context):
            return tracing.start_run(run, parent=request.trace_context)
        stopped = checkpoint.metadata.get("run_id")
        earlier = await self.store.get_run(stopped) if isinstance(stopped, str) else None
        parent = earlier.trace_context if earlier is not None else {}
        return tracing.start_run(run, parent=parent, link=request.trace_context, resumed=True)

    def _engine(
        self, checkpoint: CheckpointRecord, run: RunRecord, writes: list[PendingWrite]
    ) -> TaskTreeEngine:
        graph = self._graph(run.thread_id, run.target)
        if graph is not None:
            return GraphRun(
                graph=graph,
                checkpoint=checkpoint,
                writes=writes,
                new_checkpoint_id=new_id,
                now=self.clock,
                run_id=run.run_id,
                metadata=run.metadata,
                recursion_limit=run.recursion_limit,
                graphs=self._graphs_of(run.thread_id),
            )
        return FunctionalRun(
            checkpoint=checkpoint,
            target=run.target,
            writes=writes,
            retry_policy=self.dispatcher.retry_policy(_route(run)),
            new_checkpoint_id=new_id,
            now=self.clock,
            run_id=run.run_id,
            metadata=run.metadata,
            graphs=self._graphs_of(run.thread_id),
        )

    async def _load_subgraphs(self, thread_id: str, engine: TaskTreeEngine) -> None:
        """Attach the unfinished subgraph runs of the engine's step, from their
        newest checkpoints, so a resume continues them."""
        todo: list[NestedRuns] = [engine]
        while todo:
            host = todo.pop()
            for namespace in host.subgraph_namespaces():
                checkpoint = await self.store.get_checkpoint(thread_id, namespace)
                if checkpoint is None:
                    continue  # never stored (durability exit): it starts over
                writes = await self.store.get_writes(thread_id, namespace, checkpoint.checkpoint_id)
                child = host.attach(namespace, checkpoint, writes)
                if child is not None:
                    todo.append(child)

    async def state_view(self, checkpoint: CheckpointRecord) -> StateView:
        """GetState of a checkpoint, with the interrupts of its subgraphs."""
        writes = await self.store.get_writes(
            checkpoint.thread_id, checkpoint.checkpoint_ns, checkpoint.checkpoint_id
        )
        if checkpoint.langgraph is not None:
            return langgraph_state_view(checkpoint, writes)
        graph = self._graph(checkpoint.thread_id, str(checkpoint.metadata.get("target", "")))
        if graph is None:
            return functional_state_view(checkpoint, writes)
        steps = GraphRun(
            graph=graph,
            checkpoint=checkpoint,
            writes=writes,
            graphs=self._graphs_of(checkpoint.thread_id),
            namespace=checkpoint.checkpoint_ns,
        )
        await self._load_subgraphs(checkpoint.thread_id, steps)
        return graph_state_view(steps)

    def _launch(self, handle: RunHandle, start: Callable[[], list[Decision]]) -> None:
        self._active[handle.run_id] = handle
        self._by_thread[handle.run.thread_id] = handle
        task = asyncio.ensure_future(handle.drive(start))
        self._tasks.add(task)

        def forget(_: asyncio.Task[None]) -> None:
            if handle.timer_at is not None:
                self.timers.parked(handle.timer_at)
            self._tasks.discard(task)
            if self._active.get(handle.run_id) is handle:
                del self._active[handle.run_id]
            if self._by_thread.get(handle.run.thread_id) is handle:
                del self._by_thread[handle.run.thread_id]
            if len(handle.engine.tasks) >= _LARGE_RUN_TASKS:
                heap.release_later()  # what its tasks' results took goes back to the system

        task.add_done_callback(forget)

    async def cancel(self, run_id: str, *, within: float | None = CANCEL_WAIT) -> RunRecord:
        """Cancel an active run, wherever it runs, and return it once stopped.
        After `within` seconds the cancellation stands but the call answers
        CANCEL_PENDING (the run's store or replica is slow to answer)."""
        handle = self._active.get(run_id)
        if handle is not None:
            handle.post(inbox.CancelRequested())
        else:
            run = await self.store.get_run(run_id)
            if run is None:
                raise error_for("RUN_NOT_FOUND", f"run {run_id!r} does not exist", run_id=run_id)
            if run.state is RunState.CANCELLED:
                return run  # a retried CancelRun (after CANCEL_PENDING, say)
            if run.state not in _ACTIVE:
                raise error_for(
                    "RUN_FINISHED", f"run {run_id!r} is {run.state.value}", run_id=run_id
                )
            if any(w.reason is WaitReason.TIMER for w in run.waiting):
                sleeping = await self.store.claim_sleeping_run(run_id, self.replica_id)
                if sleeping is not None:  # else it woke meanwhile: its owner stops it
                    await self._store_end(run, sleeping, RunState.CANCELLED)
                    return run
            token = (await self.store.owned_runs(self.replica_id)).get(run_id)
            if token is not None and run_id not in self._active and run_id not in self._resuming:
                # Held by this replica but driven by nothing here (its resume
                # failed): nobody else would act on a stop request.
                await self._store_end(
                    run, Lease(run_id, self.replica_id, token), RunState.CANCELLED
                )
                return run
            if not await self.store.request_stop(run_id, STOP_CANCEL):
                raise error_for("RUN_FINISHED", f"run {run_id!r} has ended", run_id=run_id)
        if within is None:
            return await self.outcome(run_id)
        try:
            return await asyncio.wait_for(self.outcome(run_id), within)
        except TimeoutError:
            raise error_for(
                "CANCEL_PENDING",
                f"run {run_id!r} is being cancelled; it stops once its store or replica answers",
                run_id=run_id,
            ) from None

    async def outcome(self, run_id: str) -> RunRecord:
        """The run once it is no longer active (finished or interrupted),
        wherever it runs."""
        delay = _POLL_FIRST
        while True:
            handle = self._active.get(run_id)
            if handle is not None:
                try:
                    return await asyncio.shield(handle.done)
                except RunAbandoned:
                    pass  # another replica continues it
            run = await self.store.get_run(run_id)
            if run is None:
                raise error_for("RUN_NOT_FOUND", f"run {run_id!r} does not exist", run_id=run_id)
            if run.state not in _ACTIVE:
                return run
            self._check_open()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

    async def get_run(self, run_id: str) -> RunRecord:
        handle = self._active.get(run_id)
        if handle is not None:
            return handle.run
        run = await self.store.get_run(run_id)
        if run is None:
            raise error_for("RUN_NOT_FOUND", f"run {run_id!r} does not exist", run_id=run_id)
        return run

    def _check_open(self) -> None:
        """A client waiting on an unfinished run is sent to another replica
        (UNAVAILABLE) when this one shuts down."""
        if self._closing:
            raise error_for("SHUTTING_DOWN", "the server is shutting down")

    def thread_is_busy(self, thread_id: str) -> bool:
        return thread_id in self._by_thread or thread_id in self._starting

    async def follow(self, run_id: str, after_id: int = 0) -> AsyncIterator[EventRecord]:
        """The run's events after `after_id` until it ends or stops at an
        interrupt: from its handle when this replica drives it, else (or once
        another replica took it over) from the store."""
        handle = self._active.get(run_id)
        if handle is None:
            if await self.store.get_run(run_id) is None:
                raise error_for("RUN_NOT_FOUND", f"run {run_id!r} does not exist", run_id=run_id)
        else:
            async for event in self._follow_handle(handle, after_id):
                yield event
                after_id = event.event_id
            if not handle.abandoned:
                return
        async for event in self._follow_store(run_id, after_id):
            yield event

    async def _follow_handle(self, handle: RunHandle, after_id: int) -> AsyncIterator[EventRecord]:
        event_log = handle.log
        if after_id < event_log.first_id - 1:
            for event in await self.store.read_events(handle.run_id, after_id):
                if event.event_id >= event_log.first_id:
                    break
                yield event
                after_id = event.event_id
        while True:
            events = event_log.since(after_id)
            if events:
                # Yielding suspends us: look again before waiting or returning.
                for event in events:
                    yield event
                    after_id = event.event_id
                continue
            if event_log.closed:
                return
            await event_log.wait()

    async def _follow_store(self, run_id: str, after_id: int) -> AsyncIterator[EventRecord]:
        delay = _POLL_FIRST
        while True:
            events = await self.store.read_events(run_id, after_id)
            for event in events:
                yield event
                after_id = event.event_id
            if events:
                delay = _POLL_FIRST
                continue
            if run_id in self._active:  # this replica took it over meanwhile
                async for event in self.follow(run_id, after_id):
                    yield event
                return
            run = await self.store.get_run(run_id)
            if run is None or run.state not in _ACTIVE:
                # A run's last events are stored with its end.
                for event in await self.store.read_events(run_id, after_id):
                    yield event
                return
            self._check_open()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

    # --- recovery ------------------------------------------------------------------------

    async def _resume(self, run: RunRecord, lease: Lease, pause: float = _POLL_FIRST) -> None:
        """Drive a run this replica just claimed, from its last checkpoint.
        While the store cannot be read it is tried again in the background
        (with a doubling `pause`); a run that cannot be resumed otherwise
        fails with the reason rather than staying RUNNING."""
        stale = self._active.get(run.run_id)
        if stale is not None:
            # This replica lost the run and won it back before it noticed:
            # the old drive withdraws its tasks first, then the new one starts.
            stale.post(inbox.LeaseLost())
            await asyncio.gather(asyncio.shield(stale.done), return_exceptions=True)
        # Until it is driven (a retry after a pause included), a cancel goes
        # through a stop request, which the drive then honours.
        self._resuming.add(run.run_id)
        again = False
        try:
            loaded = await self._load_run(run, lease)
        except LeaseLost:
            return
        except StoreUnavailable as error:
            log.warning(
                "run %s: cannot resume it yet (%s); trying again",
                run.run_id,
                error,
                extra=logs.ids(run=run),
            )
            again = not self._closing
            if again:
                self._later(self._resume_after(run, lease, pause))
            return
        except Exception as error:
            log.exception("cannot resume run %s; failing it", run.run_id, extra=logs.ids(run=run))
            with contextlib.suppress(Exception):
                await self._end(run, lease, ErrorRecord("RunDriverError", _cannot_resume(error)))
            return
        finally:
            if not again:
                self._resuming.discard(run.run_id)
        if loaded is not None:
            handle, engine = loaded
            log.info(
                "resuming run %s on thread %s",
                run.run_id,
                namespaces.display(run.thread_id),
                extra=logs.ids(run=run),
            )
            # Its timers that are due fire first: their sleeps return at once.
            self._launch(handle, lambda: engine.wake_timers(self.timer_clock()) + engine.start())

    async def _answer_timed_out(self, run: RunRecord) -> None:
        """The interrupts of an interrupted run timed out: answer those due,
        as their calls asked (their default, or InterruptTimeoutError), with
        a run on the thread, unless a resume answered them first."""
        now = self.timer_clock()
        due = [i for i in run.interrupts if i.timeout_at is not None and i.timeout_at <= now]
        if not due:
            return  # not yet on this replica's clock: the timer comes back
        deadline = min(i.timeout_at or now for i in due)
        request = StartRun(
            thread_id=run.thread_id,
            target=run.target,
            has_resume=True,
            resume_by_id={i.id: i.default for i in due},
            timed_out=frozenset(i.id for i in due),
            durability=run.durability,
            stream_modes=list(run.stream_modes),
            request_id=f"interrupt-timeout:{run.run_id}:{deadline!r}",
            recursion_limit=run.recursion_limit,
        )
        try:
            started = await self.start(request)
        except ServiceError as error:
            if error.reason in ("INTERRUPT_NOT_FOUND", "NO_PENDING_INTERRUPT", "NOTHING_TO_RESUME"):
                await self.store.clear_timer(run.run_id)  # answered or abandoned meanwhile
                return
            if error.reason == "THREAD_BUSY":
                return  # a run on the thread clears the timer, else it comes back
            raise
        resumed = started.run if isinstance(started, RunHandle) else started
        log.info(
            "run %s: %d interrupts timed out; run %s answers them",
            run.run_id,
            len(due),
            resumed.run_id,
            extra=logs.ids(run=run),
        )

    async def _resume_after(self, run: RunRecord, lease: Lease, pause: float) -> None:
        await asyncio.sleep(pause)
        await self._resume(run, lease, min(pause * 2, _POLL_MAX * 4))

    def _later(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _load_run(
        self, run: RunRecord, lease: Lease
    ) -> tuple[RunHandle, TaskTreeEngine] | None:
        """The handle that continues `run`, or None when it had ended."""
        if _route(run) not in self._targets:
            await self._load_targets()
        if await self.store.get_checkpoint(run.thread_id, "", run.checkpoint_id) is None:
            await self._end(run, lease, _RUN_LOST)
            return None
        # The thread was busy with this run, so its newest checkpoint is
        # the run's progress (a graph run writes one per step).
        checkpoint = await self.store.get_checkpoint(run.thread_id)
        assert checkpoint is not None
        if not checkpoints.is_unfinished(checkpoint):
            await self._complete(run, checkpoint, lease)
            return None
        writes = await self.store.get_writes(run.thread_id, "", checkpoint.checkpoint_id)
        engine = self._engine(checkpoint, run, writes)
        await self._load_subgraphs(run.thread_id, engine)
        pending = WriteBatch()
        if any(w.reason is WaitReason.TIMER for w in run.waiting):
            # Woken: it no longer sleeps, as its row says with its first commit.
            run.waiting = [w for w in run.waiting if w.reason is not WaitReason.TIMER]
            pending.runs.append(run)
        handle = RunHandle(
            run=run,
            engine=engine,
            checkpoint=checkpoint,
            previous=checkpoints.previous_value(checkpoint),
            store=self.store,
            dispatcher=self.dispatcher,
            first_event_id=first_event_id(
                await self.store.last_event_id(run.run_id), lease.token, run.durability
            ),
            clock=self.clock,
            timer_clock=self.timer_clock,
            pending=pending,
            metrics=self.metrics,
            lease=lease,
            trace=tracing.start_run(run, parent=run.trace_context, resumed=True),
        )
        return handle, engine

    async def _complete(self, run: RunRecord, final: CheckpointRecord, lease: Lease) -> None:
        """A run whose final checkpoint was stored just before the server stopped."""
        graph = self._graph(run.thread_id, run.target)
        output: Json = final.channel_values.get(checkpoints.END)
        if graph is not None:
            output = graph_engine.state_of(graph, final)
        run.has_output, run.output = True, output
        await self._store_end(run, lease, RunState.SUCCEEDED)

    async def _end(self, run: RunRecord, lease: Lease, error: ErrorRecord) -> None:
        """Fail a run that cannot be driven, with the reason."""
        run.error = error
        await self._store_end(run, lease, RunState.FAILED)

    async def _store_end(self, run: RunRecord, lease: Lease, state: RunState) -> None:
        """Store the end of a run that no handle drives, and free its thread."""
        now = self.clock()
        run.state, run.updated_at, run.waiting = state, now, []
        status = THREAD_STATUS_AT_END[state]
        await self.store.commit(
            WriteBatch(
                runs=[run],
                thread_statuses=[ThreadStatusChange(run.thread_id, status, now)],
                lease=lease,
            )
        )
        self.metrics.run_ended(run.target, namespaces.namespace_of(run.thread_id), state.value)


_RUN_LOST = ErrorRecord(
    "RunLost", "the server stopped before the run stored anything (durability exit)"
)


def _route(run: RunRecord) -> str:
    """The run's target as the workers of its namespace register it."""
    return namespaces.beside(run.thread_id, run.target)


def _cannot_resume(error: Exception) -> str:
    return f"the service could not resume the run ({type(error).__name__}); its log has the details"


def _check_nesting(graph: GraphModel, graphs: dict[str, GraphModel]) -> None:
    """Raise INVALID_ARGUMENT when `graph` contains itself through subgraphs."""
    path = [graph.name]

    def visit(current: GraphModel) -> None:
        for node in current.nodes.values():
            if not node.subgraph:
                continue
            if node.subgraph in path:
                cycle = " -> ".join([*path, node.subgraph])
                raise error_for(
                    "INVALID_ARGUMENT",
                    f"graph {graph.name!r} contains itself through subgraphs: {cycle}",
                    graph=graph.name,
                )
            sub = graphs.get(node.subgraph)
            if sub is not None:
                path.append(sub.name)
                visit(sub)
                path.pop()

    visit(graph)


def _check_native(checkpoint: CheckpointRecord) -> None:
    """Native runs and UpdateState never start from a LangGraph app's checkpoint."""
    if checkpoint.langgraph is not None:
        raise error_for(
            "LANGGRAPH_THREAD",
            f"thread {checkpoint.thread_id!r} holds a LangGraph application's checkpoints;"
            " run it with LangGraph and CairnSaver",
            thread_id=checkpoint.thread_id,
        )
