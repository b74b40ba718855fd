"""The superstep engine of the Graph API.

A `GraphRun` drives a StateGraph from one checkpoint: the nodes triggered by
the checkpoint run in parallel as tasks on workers (a step); when every task
of the step has finished, their writes go through the channels' reducers in a
deterministic order (edge-triggered nodes by name, then Send packets in
order), the edges and routers pick the next step's nodes, and one checkpoint
is written. Tasks of a step are the roots of the task tree, so functional
tasks called inside nodes are recorded and replayed as in the functional API.
A failed or interrupted step keeps the writes of the nodes that finished; a
resume runs only the others.

Besides the state keys, a graph checkpoint holds these channels:

    __input__              the run's input, until the __start__ step applies it
    __triggers__           names of the nodes the next step runs
    __sends__              Send packets ({"node", "arg"}) the next step runs
    __joins__              sources seen so far by joins ({join key: [names]})
    __unfinished__         a run's end is still to come though no node is next
                           (see checkpoints.UNFINISHED)

Breakpoints work as LangGraph's: interrupt_before stops a run when a step's
checkpoint is written with a breakpoint node next, interrupt_after when the
step that ran such a node is written (also the last step: the run stops with
nothing next). A resume (a run without input) never stops before the step it
resumes, even after UpdateState: LangGraph marks every channel version as
seen by the breakpoints when a run resumes (pregel/_loop.py, `_first`).

A subgraph node, or a graph called from inside a node, runs as a nested
GraphRun (see nesting.py) with its checkpoints in its own namespace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from cairn_server.domain import (
    DEFAULT_RECURSION_LIMIT,
    CheckpointRecord,
    ErrorRecord,
    Json,
    PendingWrite,
    StreamMode,
)
from cairn_server.engine.checkpoints import UNFINISHED, checkpoint_chunk, is_unfinished
from cairn_server.engine.decisions import Decision, Emit, Finish, NewCheckpoint, Record
from cairn_server.engine.graph_model import END, START, GraphModel
from cairn_server.engine.nesting import NestedRuns
from cairn_server.engine.reducers import MISSING, InvalidUpdate, reduce
from cairn_server.engine.tasks import (
    INTERRUPT,
    RETURN,
    InterruptTimeout,
    TaskNode,
    TaskStatus,
    interrupt_chunk,
)
from cairn_server.errors import error_for
from cairn_server.ids import derive_id

INPUT, TRIGGERS, SENDS, JOINS = "__input__", "__triggers__", "__sends__", "__joins__"
MARK = "__cairn__"
PUSH = "__pregel_push"  # LangGraph's trigger name of Send tasks and called tasks
CACHED = "__metadata__"  # the key LangGraph marks updates of earlier runs with


def state_of(graph: GraphModel, checkpoint: CheckpointRecord) -> dict[str, Json]:
    """The state keys that have a value."""
    values = checkpoint.channel_values
    return {name: values[name] for name in graph.channels if name in values}


def next_nodes(checkpoint: CheckpointRecord) -> list[str]:
    """The nodes of the checkpoint's step, as LangGraph lists them: Send
    packets first, then the nodes edges triggered."""
    values = checkpoint.channel_values
    return [*(s["node"] for s in values.get(SENDS, [])), *values.get(TRIGGERS, [])]


def node_task_id(checkpoint_id: str, node: str) -> str:
    """The id of the task running `node` from the checkpoint's triggers."""
    return derive_id(checkpoint_id, "node", node)


def send_task_id(checkpoint_id: str, index: int) -> str:
    """The id of the task running the checkpoint's Send packet `index`."""
    return derive_id(checkpoint_id, "send", index)


def step_tasks(checkpoint: CheckpointRecord) -> list[tuple[str, str]]:
    """(task id, node name) of the tasks the checkpoint's step runs, in the
    order of `next_nodes`."""
    values, checkpoint_id = checkpoint.channel_values, checkpoint.checkpoint_id
    return [
        *(
            (send_task_id(checkpoint_id, index), send["node"])
            for index, send in enumerate(values.get(SENDS, []))
        ),
        *((node_task_id(checkpoint_id, name), name) for name in values.get(TRIGGERS, [])),
    ]


def input_checkpoint(
    *,
    graph: GraphModel,
    checkpoint_id: str,
    thread_id: str,
    parent: CheckpointRecord | None,
    input: Json,
    run_id: str,
    metadata: dict[str, Json],
    now: float,
    namespace: str = "",
    parents: dict[str, Json] | None = None,
) -> CheckpointRecord:
    """Step -1: the input waits in __input__ for the __start__ step. The state
    keys of the parent carry over (LangGraph threads keep their state); keys
    with a default (reducer channels, as LangGraph's) hold it from here on. A
    subgraph's checkpoints have a `namespace` and name their `parents` (the
    host checkpoint of each enclosing namespace)."""
    values: dict[str, Json] = {}
    versions: dict[str, str] = {}
    for name, spec in graph.channels.items():
        if parent is not None and name in parent.channel_values:
            values[name] = parent.channel_values[name]
            versions[name] = parent.channel_versions[name]
        elif spec.has_default:
            values[name] = spec.default
            versions[name] = checkpoint_id
    for channel, value in ((INPUT, input), (TRIGGERS, [START])):
        values[channel] = value
        versions[channel] = checkpoint_id
    return CheckpointRecord(
        thread_id=thread_id,
        checkpoint_ns=namespace,
        checkpoint_id=checkpoint_id,
        parent_checkpoint_id=parent.checkpoint_id if parent else None,
        channel_values=values,
        channel_versions=versions,
        metadata={
            **metadata,
            "source": "input",
            "step": (parent.metadata.get("step", -1) + 1) if parent else -1,
            "run_id": run_id,
            "target": graph.name,
            "writes": {START: input},
            "parents": parents or {},
            "next": [START],
        },
        created_at=now,
    )


class GraphRun(NestedRuns):
    """Supersteps of one run of a graph, from one checkpoint on."""

    def __init__(
        self,
        *,
        graph: GraphModel,
        checkpoint: CheckpointRecord,
        writes: Iterable[PendingWrite] = (),
        new_checkpoint_id: Callable[[], str] = lambda: "",
        now: Callable[[], float] = lambda: 0.0,
        run_id: str = "",
        metadata: dict[str, Json] | None = None,
        recursion_limit: int = DEFAULT_RECURSION_LIMIT,
        graphs: Callable[[str], GraphModel | None] = lambda name: None,
        namespace: str = "",
    ) -> None:
        super().__init__(
            checkpoint,
            namespace=namespace,
            new_checkpoint_id=new_checkpoint_id,
            now=now,
            run_id=run_id,
            metadata=metadata,
        )
        self.graph = graph
        self._graphs = graphs
        self.target = graph.name
        self._recursion_limit = recursion_limit
        self._steps = 0
        self._opened = False  # the run's first chunks are emitted
        self._starting = False  # inside start(): the step cannot settle yet
        self._plan()
        writes = list(writes)
        self._restore(writes)
        self._note_subgraphs(writes)

    # --- reading ----------------------------------------------------------------

    @property
    def state(self) -> dict[str, Json]:
        return state_of(self.graph, self.checkpoint)

    def node_tasks(self) -> list[TaskNode]:
        """The step's node tasks, as `step_tasks` orders them."""
        return sorted((t for t in self.tasks.values() if t.id in self._node_of), key=_order)

    def _in_write_order(self) -> list[TaskNode]:
        """The step's node tasks in the order their writes are applied (as
        LangGraph's, by task path): edge-triggered nodes by name, then Send
        packets in order."""
        return sorted(self.node_tasks(), key=lambda t: (t.id in self._pushed, t.index))

    # --- the step ---------------------------------------------------------------------

    def start(self) -> list[Decision]:
        """Run the checkpoint's step: dispatch what has not finished."""
        decisions: list[Decision] = []
        if not self._opened:
            self._opened = True
            decisions.extend(self._opening())
        if not self.node_tasks():
            # As LangGraph: a resume with nothing left to run (the run stopped
            # after its last step) ends with the state and writes no checkpoint.
            self.finished = True
            return [*decisions, Finish("succeeded", output=self._output(self.state))]
        cached: list[Decision] = []
        # A subgraph may finish as it starts: the step settles once all started.
        self._starting = True
        for task in self.node_tasks():
            if task.status is not TaskStatus.DONE:
                task.status, task.attempt, task.error = TaskStatus.QUEUED, 1, None
        for task in self.node_tasks():
            if task.status is TaskStatus.DONE:
                if self._node_of[task.id] != START:
                    # As LangGraph: a node that finished in an earlier run is
                    # shown started, and its update marked cached.
                    decisions.append(Emit(StreamMode.TASKS, self.task_started(task.id)))
                    update = {task.label: self._update_of(task) or None}
                    cached.append(Emit(StreamMode.UPDATES, {**update, CACHED: {"cached": True}}))
                decisions.extend(self._route(task))
            else:
                decisions.extend(self._start(task))
        self._starting = False
        return decisions + cached + self._settle()

    def _plan(self) -> None:
        """Create the step's tasks from the checkpoint's sends and triggers."""
        checkpoint = self.checkpoint
        values = checkpoint.channel_values
        self.tasks = {}
        self.nested, self._subgraph_ns = {}, {}
        self._node_of: dict[str, str] = {}
        self._pushed: set[str] = set()  # tasks of Send packets
        state = self.state
        for position, (task_id, name) in enumerate(step_tasks(checkpoint)):
            if name == START:
                task = TaskNode(task_id, START, "", position, input=values.get(INPUT))
                task.status, task.result = TaskStatus.DONE, values.get(INPUT)
            else:
                node = self.graph.nodes[name]
                task = TaskNode(
                    task_id,
                    node.function,
                    "",
                    position,
                    input=state,
                    retry_policy=node.retry_policy,
                    label=name,
                )
            self.tasks[task_id], self._node_of[task_id] = task, name
        for index, send in enumerate(values.get(SENDS, [])):
            task = self.tasks[send_task_id(checkpoint.checkpoint_id, index)]
            task.input = send.get("arg")
            self._pushed.add(task.id)

    def _root_completed(self, task: TaskNode, save: Json, has_save: bool) -> list[Decision]:
        decisions: list[Decision] = [Record((task.write(RETURN, task.result),))]
        if task.id not in self._node_of:
            return decisions  # a router: LangGraph streams no task for it
        update, _ = self._split(task)
        # As LangGraph: {node: None} when the node wrote no state key.
        decisions.append(Emit(StreamMode.UPDATES, {task.label: update or None}))
        decisions.append(Emit(StreamMode.TASKS, self._task_result(task), task.path))
        return decisions + self._route(task)

    def failed(self, task_id: str, error: ErrorRecord, jitter: float) -> list[Decision]:
        decisions = super().failed(task_id, error, jitter)
        if not self._is_router(task_id):
            return decisions
        return [d for d in decisions if not (isinstance(d, Emit) and d.mode is StreamMode.TASKS)]

    def interrupted(
        self, task_id: str, index: int, value: Json, timeout: InterruptTimeout | None = None
    ) -> list[Decision]:
        """As LangGraph streams an interrupt: updates {"__interrupt__": [...]},
        the state with the interrupts under "__interrupt__", then the task's
        result."""
        decisions = super().interrupted(task_id, index, value, timeout)
        task = self.tasks.get(task_id)  # None: a task of a subgraph
        if task is None or task.status is not TaskStatus.INTERRUPTED or task.interrupt is None:
            return decisions
        interrupts = [interrupt_chunk(task.interrupt)]
        ours: list[Decision] = [
            Emit(StreamMode.UPDATES, {INTERRUPT: interrupts}),
            Emit(StreamMode.VALUES, {**self._output(self.state), INTERRUPT: interrupts}),
            Emit(StreamMode.TASKS, self._task_result(task), task.path),
        ]
        out: list[Decision] = []
        for decision in decisions:
            if isinstance(decision, Emit) and decision.mode in (
                StreamMode.UPDATES,
                StreamMode.TASKS,
            ):
                out.extend(ours)
                ours = []
            else:
                out.append(decision)
        return out

    def _route(self, task: TaskNode) -> list[Decision]:
        """Dispatch the routers of a finished node, on the state with its update."""
        node = self._node_of[task.id]
        branches = [b for b in self.graph.branches if b.source == node]
        if not branches:
            return []
        try:
            update, _ = self._split(task)
            fresh = self._reduce(self.state, [update])
        except InvalidUpdate as error:
            # The node's own result is invalid: the step fails with it (the
            # result stays recorded, so a resume fails the same way).
            task.status, task.error = (
                TaskStatus.FAILED,
                ErrorRecord("InvalidUpdateError", str(error)),
            )
            return []
        decisions: list[Decision] = []
        for index, branch in enumerate(branches):
            router_id = derive_id(task.id, "route", index)
            router = self.tasks.get(router_id)
            if router is None:
                router = TaskNode(router_id, branch.router, "", 1000 + index, input=fresh)
                self.tasks[router_id] = router
            if router.status is not TaskStatus.DONE:
                router.status, router.input = TaskStatus.QUEUED, fresh
                decisions.append(self._dispatch(router))
        return decisions

    def _settle(self) -> list[Decision]:
        if self.finished or self._starting or any(t.status.in_flight for t in self.tasks.values()):
            return []
        roots = sorted((t for t in self.tasks.values() if t.is_root), key=_order)
        failed = [t for t in roots if t.status is TaskStatus.FAILED]
        if failed:
            self.finished = True
            return [Finish("failed", error=failed[0].error)]
        interrupts = tuple(self.pending_interrupts())
        # A subgraph stopped at a breakpoint stops its host too.
        if interrupts or any(t.status is TaskStatus.SUSPENDED for t in roots):
            self.finished = True
            return [*self._interrupted_values(), Finish("interrupted", interrupts=interrupts)]
        return self._advance()

    def _advance(self) -> list[Decision]:
        """Apply the step's writes and write the next checkpoint."""
        values = self.checkpoint.channel_values
        joins: dict[str, list[str]] = {k: list(v) for k, v in values.get(JOINS, {}).items()}
        triggers: set[str] = set()
        sends: list[dict[str, Json]] = []
        updates: list[dict[str, Json]] = []
        ran: list[str] = []
        try:
            for task in self._in_write_order():
                node = self._node_of[task.id]
                ran.append(node)
                update, goto = self._split(task)
                updates.append(update)
                for target in goto:
                    self._target(target, triggers, sends, {})
                for edge in self.graph.edges:
                    if node not in edge.sources:
                        continue
                    if len(edge.sources) == 1:
                        self._target(edge.target, triggers, sends, {})
                        continue
                    seen = sorted({*joins.get(edge.join_key, []), node})
                    if set(seen) == set(edge.sources):
                        joins.pop(edge.join_key, None)
                        self._target(edge.target, triggers, sends, {})
                    else:
                        joins[edge.join_key] = seen
                branches = [b for b in self.graph.branches if b.source == node]
                for index, branch in enumerate(branches):
                    router = self.tasks[derive_id(task.id, "route", index)]
                    for target in _as_list(router.result):
                        self._target(target, triggers, sends, branch.path_map)
            state = self._reduce(self.state, updates)
        except InvalidUpdate as error:
            self.finished = True
            return [Finish("failed", error=ErrorRecord("InvalidUpdateError", str(error)))]
        checkpoint = self._checkpoint(state, sorted(triggers), sends, joins, ran)
        nexts = next_nodes(checkpoint)
        before = bool(set(nexts) & self.graph.interrupt_before)
        after = bool(set(ran) & self.graph.interrupt_after)
        if after and not nexts:
            _mark_unfinished(checkpoint)
        self.checkpoint = checkpoint
        decisions: list[Decision] = [NewCheckpoint(checkpoint)]
        # As LangGraph: values when the step wrote a key of the output.
        written = {key for update in updates for key in update}
        if written & set(self.graph.output_channels or self.graph.channels):
            decisions.append(Emit(StreamMode.VALUES, self._output(state)))
        self._steps += 1
        if before or after:
            return [*decisions, self._emit_checkpoint(), *self._stop_at_breakpoint()]
        if not nexts:
            self.finished = True
            return [
                *decisions,
                self._emit_checkpoint(),
                Finish("succeeded", output=self._output(state)),
            ]
        if self._steps >= self._recursion_limit:
            self.finished = True
            message = (
                f"Recursion limit of {self._recursion_limit} reached without hitting a stop "
                "condition. You can increase the limit by setting `recursion_limit` on the run "
                "(Client.invoke(..., recursion_limit=N))."
            )
            return [*decisions, Finish("failed", error=ErrorRecord("GraphRecursionError", message))]
        self._plan()
        return [*decisions, self._emit_checkpoint(), *self.start()]

    # --- stream chunks ---------------------------------------------------------------------

    def _opening(self) -> list[Decision]:
        """The run's first chunks. A run started with input shows its input
        checkpoint; a resumed run shows the state, then the checkpoint it
        resumes from with what its tasks already wrote (as LangGraph)."""
        metadata = self.checkpoint.metadata
        started = metadata.get("source") == "input" and metadata.get("run_id") == self.run_id
        decisions: list[Decision] = []
        if not started:
            decisions.append(Emit(StreamMode.VALUES, self._output(self.state)))
        decisions.append(self._emit_checkpoint())
        return decisions

    def _emit_checkpoint(self) -> Emit:
        """A `checkpoints` chunk of the current checkpoint, with the tasks of
        its step."""
        checkpoint = self.checkpoint
        chunk = checkpoint_chunk(
            checkpoint,
            values=self._output(self.state),
            next=next_nodes(checkpoint),
            tasks=[self._task_summary(*task) for task in step_tasks(checkpoint)],
        )
        return Emit(StreamMode.CHECKPOINTS, chunk)

    def _interrupted_values(self) -> list[Decision]:
        """As LangGraph: a step stopped by interrupts shows the state with the
        updates of its finished nodes applied (not stored: the step runs
        again on resume), when they wrote a key of the output."""
        updates = [
            self._update_of(task)
            for task in self._in_write_order()
            if task.status is TaskStatus.DONE and self._node_of[task.id] != START
        ]
        written = {key for update in updates for key in update}
        if not written & set(self.graph.output_channels or self.graph.channels):
            return []
        try:
            state = self._reduce(self.state, updates)
        except InvalidUpdate:
            return []
        return [Emit(StreamMode.VALUES, self._output(state))]

    def _task_summary(self, task_id: str, name: str) -> dict[str, Json]:
        """A task of a `checkpoints` chunk, as LangGraph's: with its error, or
        with its result when it wrote something, or with its interrupts."""
        task = self.tasks.get(task_id) if name != START else None
        summary: dict[str, Json] = {"id": task_id, "name": name}
        if task is not None and task.error is not None and task.status is not TaskStatus.DONE:
            return {**summary, "error": task.error.message, "state": None}
        interrupts = [interrupt_chunk(task.interrupt)] if task and task.interrupt else []
        if task is not None and task.status is TaskStatus.DONE:
            result = self._update_of(task)
            if result:
                summary["result"] = result
        return {**summary, "interrupts": interrupts, "state": None}

    def task_started(self, task_id: str) -> dict[str, Json] | None:
        """As LangGraph's, with the trigger that started it; None for a router
        (LangGraph runs routers inside the node's task)."""
        if task_id not in self.tasks:
            return super().task_started(task_id)  # a task of a subgraph
        task = self.tasks[task_id]
        if self._is_router(task_id):
            return None
        node = self._node_of.get(task_id)
        if node is not None and task_id == node_task_id(self.checkpoint.checkpoint_id, node):
            joins = {
                e.join_key for e in self.graph.edges if e.target == node and len(e.sources) > 1
            }
            triggers = sorted({f"branch:to:{node}", *joins})
        else:
            triggers = [PUSH]  # a Send packet, or a task called inside a node
        return {
            "id": task.id,
            "name": task.label or task.name,
            "input": task.input,
            "triggers": triggers,
        }

    def _task_result(self, task: TaskNode) -> dict[str, Json]:
        chunk = super()._task_result(task)
        if task.id in self._node_of:
            # A node's result is its update: the state keys it wrote.
            chunk["result"] = self._update_of(task) if task.status is TaskStatus.DONE else {}
        return chunk

    def _update_of(self, task: TaskNode) -> dict[str, Json]:
        try:
            return self._split(task)[0]
        except InvalidUpdate:
            return {}

    def _is_router(self, task_id: str) -> bool:
        task = self.tasks.get(task_id)
        return task is not None and task.is_root and task_id not in self._node_of

    # --- helpers ---------------------------------------------------------------------------

    def _split(self, task: TaskNode) -> tuple[dict[str, Json], list[Json]]:
        """(update, goto) of a node's result."""
        result = task.result
        if self._node_of.get(task.id) == START:
            result = _input_update(self.graph, result)
        if result is None:
            return {}, []
        if isinstance(result, dict) and result.get(MARK) == "command":
            update = result.get("update") or {}
            goto = _as_list(result.get("goto"))
        else:
            update, goto = result, []
        if not isinstance(update, dict):
            raise InvalidUpdate(
                f"node {self._node_of[task.id]!r} returned {type(update).__name__}; "
                "a node returns a dict of state updates"
            )
        # As LangGraph: keys the state does not declare are dropped.
        known = {key: value for key, value in update.items() if key in self.graph.channels}
        return known, goto

    def _target(
        self,
        target: Json,
        triggers: set[str],
        sends: list[dict[str, Json]],
        path_map: dict[str, str],
    ) -> None:
        if isinstance(target, dict) and target.get(MARK) == "send":
            node = target.get("node")
            if node not in self.graph.nodes:
                raise InvalidUpdate(f"Send to unknown node {node!r}")
            sends.append({"node": node, "arg": target.get("arg")})
            return
        name = path_map.get(str(target), target) if path_map else target
        if name == END:
            return
        if not isinstance(name, str) or name not in self.graph.nodes:
            raise InvalidUpdate(f"routed to unknown node {target!r}")
        triggers.add(name)

    def _reduce(self, state: dict[str, Json], updates: list[dict[str, Json]]) -> dict[str, Json]:
        written: dict[str, list[Json]] = {}
        for update in updates:
            for key, value in update.items():
                written.setdefault(key, []).append(value)
        new = dict(state)
        for key, values in written.items():
            channel = self.graph.channels[key]
            current = state.get(key, channel.default if channel.has_default else MISSING)
            new[key] = reduce(channel.reducer, key, current, values)
        return new

    def _output(self, state: dict[str, Json]) -> dict[str, Json]:
        keys = self.graph.output_channels or tuple(self.graph.channels)
        return {k: state[k] for k in keys if k in state}

    def _stop_at_breakpoint(self) -> list[Decision]:
        """As LangGraph: a breakpoint shows as an interrupt without values."""
        self.finished = True
        return [Emit(StreamMode.UPDATES, {INTERRUPT: []}), Finish("interrupted")]

    def _checkpoint(
        self,
        state: dict[str, Json],
        triggers: list[str],
        sends: list[dict[str, Json]],
        joins: dict[str, list[str]],
        ran: list[str],
    ) -> CheckpointRecord:
        parent = self.checkpoint
        checkpoint_id = self.new_checkpoint_id()
        versions: dict[str, str] = {}
        values: dict[str, Json] = {}
        for key, value in state.items():
            old = parent.channel_values.get(key, MISSING)
            unchanged = old is not MISSING and old == value
            versions[key] = parent.channel_versions[key] if unchanged else checkpoint_id
            values[key] = value
        for key, value in ((TRIGGERS, triggers), (SENDS, sends), (JOINS, joins)):
            if value:
                values[key] = value
                versions[key] = checkpoint_id
        step = int(parent.metadata.get("step", -1)) + 1
        writes: dict[str, Any] = {}
        for task in self.node_tasks():
            writes[self._node_of[task.id]] = (
                self._split(task)[0] if task.result is not None else None
            )
        return CheckpointRecord(
            thread_id=parent.thread_id,
            checkpoint_ns=self.namespace,
            checkpoint_id=checkpoint_id,
            parent_checkpoint_id=parent.checkpoint_id,
            channel_values=values,
            channel_versions=versions,
            metadata={
                **self.run_metadata,
                "source": "loop",
                "step": step,
                "run_id": self.run_id,
                "target": self.graph.name,
                "writes": writes,
                "parents": parent.metadata.get("parents", {}),
                "next": [*(s["node"] for s in sends), *triggers],
            },
            created_at=self.now(),
        )

    # --- subgraphs -------------------------------------------------------------------------

    def _spawn(
        self,
        task: TaskNode,
        namespace: str,
        checkpoint: CheckpointRecord | None,
        writes: Iterable[PendingWrite],
    ) -> tuple[NestedRuns, list[Decision]] | None:
        graph = self._subgraph_of(task)
        if graph is None:
            return None
        input = task.input
        if task.id in self._node_of and isinstance(input, dict):
            input = {k: v for k, v in input.items() if k in graph.channels}
        return GraphRun.subgraph_run(
            graph,
            host=self,
            namespace=namespace,
            input=input,
            checkpoint=checkpoint,
            writes=writes,
            graphs=self._graphs,
            recursion_limit=self._recursion_limit,
        )

    @staticmethod
    def subgraph_run(
        graph: GraphModel,
        *,
        host: NestedRuns,
        namespace: str,
        input: Json,
        checkpoint: CheckpointRecord | None,
        writes: Iterable[PendingWrite],
        graphs: Callable[[str], GraphModel | None],
        recursion_limit: int = DEFAULT_RECURSION_LIMIT,
    ) -> tuple[NestedRuns, list[Decision]]:
        """A subgraph run in `namespace` of a task of `host`: from its stored
        `checkpoint`, or from a new input checkpoint (stored by the returned
        decisions)."""
        decisions: list[Decision] = []
        if checkpoint is None:
            at = host.checkpoint
            checkpoint = input_checkpoint(
                graph=graph,
                checkpoint_id=host.new_checkpoint_id(),
                thread_id=at.thread_id,
                parent=None,
                input=input,
                run_id=host.run_id,
                metadata=host.run_metadata,
                now=host.now(),
                namespace=namespace,
                parents={**at.metadata.get("parents", {}), host.namespace: at.checkpoint_id},
            )
            decisions.append(NewCheckpoint(checkpoint))
        child = GraphRun(
            graph=graph,
            checkpoint=checkpoint,
            writes=writes,
            new_checkpoint_id=host.new_checkpoint_id,
            now=host.now,
            run_id=host.run_id,
            metadata=host.run_metadata,
            recursion_limit=recursion_limit,
            graphs=graphs,
            namespace=namespace,
        )
        return child, decisions

    def _subgraph_of(self, task: TaskNode) -> GraphModel | None:
        """The graph a task runs: a subgraph node's, or the graph a node calls."""
        node = self._node_of.get(task.id)
        if node is not None:
            spec = self.graph.nodes.get(node)
            return self._graphs(spec.subgraph) if spec is not None and spec.subgraph else None
        return None if task.is_root else self._graphs(task.name)

    def _subgraph_result(self, task: TaskNode, output: Json) -> Json:
        """A subgraph node updates the keys its graph shares with ours."""
        if task.id in self._node_of and isinstance(output, dict):
            return {k: v for k, v in output.items() if k in self.graph.channels}
        return output

    # --- UpdateState ------------------------------------------------------------------------

    def update(self, values: Json, as_node: str) -> CheckpointRecord:
        """The checkpoint after applying `values` as if `as_node` returned
        them (LangGraph's update_state): reducers, then the node's edges.
        Without `as_node`, the node that wrote the checkpoint; as LangGraph,
        that may be __start__ (a run stopped before its first node)."""
        parent = self.checkpoint
        nodes = {*self.graph.nodes, START}
        if not as_node:
            writers = list(parent.metadata.get("writes") or {})
            if len(writers) != 1 or writers[0] not in nodes:
                raise error_for(
                    "INVALID_ARGUMENT",
                    "as_node is required: the checkpoint was not written by exactly one node",
                    field="as_node",
                )
            as_node = writers[0]
        if as_node not in nodes:
            raise error_for(
                "INVALID_ARGUMENT",
                f"graph {self.graph.name!r} has no node {as_node!r}",
                field="as_node",
            )
        if any(b.source == as_node for b in self.graph.branches):
            raise error_for(
                "UNSUPPORTED",
                f"updating as {as_node!r} needs its routers, which run on workers; "
                "update as a node without conditional edges",
                node=as_node,
            )
        if not isinstance(values, dict):
            raise error_for("INVALID_ARGUMENT", "values must be an object of state keys")
        joins = {k: list(v) for k, v in parent.channel_values.get(JOINS, {}).items()}
        triggers: set[str] = set()
        sends: list[dict[str, Json]] = []
        try:
            for key in values:
                if key not in self.graph.channels:
                    raise InvalidUpdate(f"unknown state key {key!r}")
            state = self._reduce(self.state, [values])
            for edge in self.graph.edges:
                if as_node in edge.sources and len(edge.sources) == 1:
                    self._target(edge.target, triggers, sends, {})
                elif as_node in edge.sources:
                    seen = sorted({*joins.get(edge.join_key, []), as_node})
                    if set(seen) == set(edge.sources):
                        joins.pop(edge.join_key, None)
                        self._target(edge.target, triggers, sends, {})
                    else:
                        joins[edge.join_key] = seen
        except InvalidUpdate as error:
            raise error_for("INVALID_ARGUMENT", str(error), node=as_node) from None
        self.tasks, self._node_of = {}, {}  # the update replaces the step
        checkpoint = self._checkpoint(state, sorted(triggers), sends, joins, [as_node])
        checkpoint.metadata["source"] = "update"
        checkpoint.metadata["writes"] = {as_node: values}
        if not next_nodes(checkpoint) and is_unfinished(parent):
            # The update did the unfinished run's last work: a resume ends it.
            _mark_unfinished(checkpoint)
        return checkpoint


def _mark_unfinished(checkpoint: CheckpointRecord) -> None:
    checkpoint.channel_values[UNFINISHED] = True
    checkpoint.channel_versions[UNFINISHED] = checkpoint.checkpoint_id


def _order(task: TaskNode) -> int:
    return task.index


def _as_list(value: Json) -> list[Json]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _input_update(graph: GraphModel, input: Json) -> Json:
    if input is None:
        return None
    if not isinstance(input, dict):
        raise InvalidUpdate(f"the input of graph {graph.name!r} must be an object of state keys")
    if graph.input_channels:
        return {k: v for k, v in input.items() if k in graph.input_channels}
    return input
