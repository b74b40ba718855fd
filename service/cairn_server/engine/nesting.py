"""Subgraph runs nested in a task tree.

A task may run a subgraph instead of going to a worker: a subgraph node, or a
graph called from inside a node. The subgraph's run is a task tree of its own,
with checkpoints in the namespace "<node>:<task id>" (nested namespaces are
joined with "|"). Its host routes worker events to it by task id, binds its
writes to its checkpoints, puts its stream chunks under its namespace, and
turns its end into the outcome of the task that drives it. That task records
the namespace (a __subgraph__ write on the host's checkpoint), so a resumed
run finds the subgraph's newest checkpoint (`subgraph_namespaces`, `attach`)
and continues it: only the subgraph's stopped nodes run again.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Iterable
from dataclasses import replace

from cairn_server.domain import (
    CheckpointRecord,
    ErrorRecord,
    InterruptRecord,
    Json,
    PendingWrite,
    RetryPolicy,
    StreamMode,
    TaskTimeouts,
)
from cairn_server.engine.decisions import (
    Cancel,
    Decision,
    Dispatch,
    Emit,
    Finish,
    NewCheckpoint,
    Record,
)
from cairn_server.engine.tasks import (
    INTERRUPT,
    SUBGRAPH,
    InterruptTimeout,
    TaskNode,
    TaskStatus,
    TaskTree,
    interrupt_chunk,
)

UNSUPPORTED_BREAKPOINT = (
    "a breakpoint (interrupt_before/interrupt_after) stopped a graph called from inside a "
    "node; only interrupt() can pause such a graph. Add the subgraph as a node instead."
)


class NestedRuns(TaskTree):
    """A task tree whose tasks may drive subgraph runs."""

    def __init__(
        self,
        checkpoint: CheckpointRecord,
        *,
        namespace: str = "",
        new_checkpoint_id: Callable[[], str] = lambda: "",
        now: Callable[[], float] = lambda: 0.0,
        run_id: str = "",
        metadata: dict[str, Json] | None = None,
    ) -> None:
        super().__init__()
        self.checkpoint = checkpoint  # the writes of the current step attach here
        self.namespace = namespace
        self.new_checkpoint_id = new_checkpoint_id
        self.now = now
        self.run_id = run_id
        self.run_metadata = metadata or {}
        self.nested: dict[str, NestedRuns] = {}  # driving task id -> subgraph run
        self._subgraph_ns: dict[str, str] = {}  # driving task id -> namespace

    # --- for subclasses -----------------------------------------------------------

    @property
    def checkpoint_id(self) -> str:
        return self.checkpoint.checkpoint_id

    @abc.abstractmethod
    def start(self) -> list[Decision]:
        """Run the tree's step: dispatch what has not finished."""

    @abc.abstractmethod
    def _spawn(
        self,
        task: TaskNode,
        namespace: str,
        checkpoint: CheckpointRecord | None,
        writes: Iterable[PendingWrite],
    ) -> tuple[NestedRuns, list[Decision]] | None:
        """The subgraph run `task` drives, from a stored `checkpoint` or, when
        None, from a new input checkpoint (stored by the returned decisions);
        None when the task runs no subgraph."""

    @abc.abstractmethod
    def _subgraph_result(self, task: TaskNode, output: Json) -> Json:
        """The driving task's result for the subgraph's output."""

    # --- resuming -------------------------------------------------------------------

    def _note_subgraphs(self, writes: Iterable[PendingWrite]) -> None:
        for write in writes:
            if write.channel == SUBGRAPH:
                self._subgraph_ns[write.task_id] = str(write.value)

    def subgraph_namespaces(self) -> list[str]:
        """Namespaces of unfinished subgraph runs to `attach` before starting."""
        return [
            namespace
            for task_id, namespace in self._subgraph_ns.items()
            if task_id not in self.nested
            and task_id in self.tasks
            and self.tasks[task_id].status is not TaskStatus.DONE
        ]

    def attach(
        self, namespace: str, checkpoint: CheckpointRecord, writes: list[PendingWrite]
    ) -> NestedRuns | None:
        """Continue the subgraph run of `namespace` from its newest checkpoint."""
        task_id = next((t for t, ns in self._subgraph_ns.items() if ns == namespace), None)
        if task_id is None or task_id not in self.tasks:
            return None
        spawned = self._spawn(self.tasks[task_id], namespace, checkpoint, writes)
        if spawned is None:
            return None
        self.nested[task_id] = spawned[0]
        return spawned[0]

    def pending_interrupts(self) -> list[InterruptRecord]:
        pending = super().pending_interrupts()
        for child in self.nested.values():
            pending.extend(child.pending_interrupts())
        return pending

    def _answer(self, by_id: dict[str, Json], timed_out: Collection[str] = ()) -> list[Decision]:
        own = {i.id for i in super().pending_interrupts()}
        mine = {k: v for k, v in by_id.items() if k in own}
        decisions = super()._answer(mine, timed_out) if mine else []
        for runner, child in self.nested.items():
            theirs = {i.id for i in child.pending_interrupts()}
            answers = {k: v for k, v in by_id.items() if k in theirs}
            if answers:
                decisions.extend(self._from_child(runner, _answering(answers, timed_out)))
        return decisions

    def _first_pending_interrupt(self, task: TaskNode) -> InterruptRecord | None:
        for node in self._walk(task):
            if (interrupt := node.pending_interrupt) is not None:
                return interrupt
            child = self.nested.get(node.id)
            if child is not None and (pending := child.pending_interrupts()):
                return pending[0]
        return None

    def interrupts_of(self, task: TaskNode) -> list[InterruptRecord]:
        """The pending interrupts of a task, of the tasks it called and of the
        subgraphs they drive."""
        pending: list[InterruptRecord] = []
        for node in self._walk(task):
            if node.pending_interrupt is not None:
                pending.append(node.pending_interrupt)
            child = self.nested.get(node.id)
            if child is not None:
                pending.extend(child.pending_interrupts())
        return pending

    # --- routing events to the run that holds the task -------------------------------

    def knows(self, task_id: str) -> bool:
        return task_id in self.tasks or any(c.knows(task_id) for c in self.nested.values())

    def _runner_of(self, task_id: str) -> str | None:
        """The task whose subgraph run holds `task_id`; None for our own."""
        if task_id in self.tasks:
            return None
        return next((r for r, c in self.nested.items() if c.knows(task_id)), None)

    def dispatched(self, task_id: str) -> None:
        runner = self._runner_of(task_id)
        if runner is None:
            super().dispatched(task_id)
        else:
            self.nested[runner].dispatched(task_id)

    def holds(self, task_id: str) -> bool:
        runner = self._runner_of(task_id)
        return super().holds(task_id) if runner is None else self.nested[runner].holds(task_id)

    def namespace_of(self, task_id: str) -> tuple[str, ...]:
        runner = self._runner_of(task_id)
        if runner is None:
            return super().namespace_of(task_id)
        child = self.nested[runner]
        return (_segment(child), *child.namespace_of(task_id))

    def task_started(self, task_id: str) -> dict[str, Json] | None:
        runner = self._runner_of(task_id)
        if runner is None:
            return super().task_started(task_id)
        return self.nested[runner].task_started(task_id)

    def schedule(
        self,
        parent_id: str,
        index: int,
        name: str,
        input: Json,
        retry_policy: RetryPolicy | None,
        *,
        local: bool = False,
        timeouts: TaskTimeouts | None = None,
    ) -> list[Decision]:
        runner = self._runner_of(parent_id)
        if runner is None:
            return super().schedule(
                parent_id, index, name, input, retry_policy, local=local, timeouts=timeouts
            )
        return self._from_child(
            runner,
            lambda c: c.schedule(
                parent_id, index, name, input, retry_policy, local=local, timeouts=timeouts
            ),
        )

    def completed(self, task_id: str, result: Json, save: Json, has_save: bool) -> list[Decision]:
        runner = self._runner_of(task_id)
        if runner is None:
            return super().completed(task_id, result, save, has_save)
        return self._from_child(runner, lambda c: c.completed(task_id, result, save, has_save))

    def failed(self, task_id: str, error: ErrorRecord, jitter: float) -> list[Decision]:
        runner = self._runner_of(task_id)
        if runner is None:
            return super().failed(task_id, error, jitter)
        return self._from_child(runner, lambda c: c.failed(task_id, error, jitter))

    def interrupted(
        self, task_id: str, index: int, value: Json, timeout: InterruptTimeout | None = None
    ) -> list[Decision]:
        runner = self._runner_of(task_id)
        if runner is None:
            return super().interrupted(task_id, index, value, timeout)
        return self._from_child(runner, lambda c: c.interrupted(task_id, index, value, timeout))

    def sleeping(self, task_id: str, index: int, due: float) -> list[Decision]:
        runner = self._runner_of(task_id)
        if runner is None:
            return super().sleeping(task_id, index, due)
        return self._from_child(runner, lambda c: c.sleeping(task_id, index, due))

    def suspended(self, task_id: str) -> list[Decision]:
        runner = self._runner_of(task_id)
        if runner is None:
            return super().suspended(task_id)
        return self._from_child(runner, lambda c: c.suspended(task_id))

    def lost(self, task_id: str) -> list[Decision]:
        runner = self._runner_of(task_id)
        if runner is None:
            return super().lost(task_id)
        return self._from_child(runner, lambda c: c.lost(task_id))

    def retry_due(self, task_id: str) -> list[Decision]:
        runner = self._runner_of(task_id)
        if runner is None:
            return super().retry_due(task_id)
        return self._from_child(runner, lambda c: c.retry_due(task_id))

    def cancel(self) -> list[Decision]:
        withdrawn: list[str] = []
        for child in self.nested.values():
            for decision in child.cancel():
                if isinstance(decision, Cancel):
                    withdrawn.extend(decision.task_ids)
        running = [
            t.id for t in self.tasks.values() if t.status.in_flight and t.id not in self.nested
        ]
        for task in self.tasks.values():
            if task.status.in_flight:
                task.status = TaskStatus.CANCELLED
        self.finished = True
        return [Cancel((*withdrawn, *running)), Finish("cancelled")]

    # --- running subgraphs -------------------------------------------------------------

    def _start(self, task: TaskNode) -> list[Decision]:
        decisions: list[Decision] = []
        if task.id not in self.nested:
            namespace = f"{task.label or task.name}:{task.id}"
            if self.namespace:
                namespace = f"{self.namespace}|{namespace}"
            spawned = self._spawn(task, namespace, None, ())
            if spawned is None:
                return super()._start(task)
            self.nested[task.id], decisions = spawned
            self._subgraph_ns[task.id] = namespace
            decisions.insert(0, Record((task.write(SUBGRAPH, namespace),)))
        task.status = TaskStatus.RUNNING
        task.retry_policy = None  # the subgraph's nodes retry by their own policies
        started = self.task_started(task.id)
        if started is not None:
            decisions.append(Emit(StreamMode.TASKS, started, task.path))
        return decisions + self._from_child(task.id, lambda c: c.start())

    def _from_child(
        self, runner: str, call: Callable[[NestedRuns], list[Decision]]
    ) -> list[Decision]:
        """Apply `call` to the subgraph run of `runner`, and take its decisions
        up: writes bound to its checkpoint, chunks and tasks under its
        namespace, its end as the outcome of `runner`."""
        child = self.nested[runner]
        current = child.checkpoint_id
        segment = _segment(child)
        out: list[Decision] = []
        for decision in call(child):
            match decision:
                case Record(checkpoint_id=""):
                    out.append(
                        replace(decision, checkpoint_ns=child.namespace, checkpoint_id=current)
                    )
                case NewCheckpoint(checkpoint=checkpoint):
                    if checkpoint.checkpoint_ns == child.namespace:
                        current = checkpoint.checkpoint_id
                    out.append(decision)
                case Emit(namespace=namespace):
                    out.append(replace(decision, namespace=(segment, *namespace)))
                case Dispatch(path=path):
                    out.append(replace(decision, path=(segment, *path)))
                case Finish():
                    out.extend(self._subgraph_finished(runner, decision))
                case _:
                    out.append(decision)
        return out

    def _subgraph_finished(self, runner: str, finish: Finish) -> list[Decision]:
        task = self.tasks[runner]
        if finish.state == "succeeded":
            return self.completed(runner, self._subgraph_result(task, finish.output), None, False)
        if finish.state == "failed" and finish.error is not None:
            return self.failed(runner, finish.error, 0.0)
        if finish.state != "interrupted" or task.status is not TaskStatus.RUNNING:
            return []
        interrupts = self.nested[runner].pending_interrupts()
        if not interrupts and not task.is_root:
            return self.failed(runner, ErrorRecord("GraphInterrupt", UNSUPPORTED_BREAKPOINT), 0.0)
        task.status = TaskStatus.SUSPENDED
        decisions: list[Decision] = []
        if interrupts:
            chunks = [interrupt_chunk(i) for i in interrupts]
            decisions.append(Emit(StreamMode.UPDATES, {INTERRUPT: chunks}))
        return decisions + self._deliver_to_parent(task) + self._settle()


def _segment(child: NestedRuns) -> str:
    return child.namespace.rsplit("|", 1)[-1]


def _answering(
    answers: dict[str, Json], timed_out: Collection[str]
) -> Callable[[NestedRuns], list[Decision]]:
    return lambda child: child._answer(answers, timed_out)
