"""The replay engine of the functional API.

One `FunctionalRun` drives one run of an entrypoint on one checkpoint: the
entrypoint is the root of the task tree. When it succeeds, the run writes a
final checkpoint with its output and the value saved for the next run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from cairn_server.domain import (
    CheckpointRecord,
    ErrorRecord,
    Json,
    PendingWrite,
    RetryPolicy,
    StreamMode,
)
from cairn_server.engine import checkpoints
from cairn_server.engine.decisions import Cancel, Decision, Emit, Finish, NewCheckpoint, Park
from cairn_server.engine.graph import GraphRun
from cairn_server.engine.graph_model import GraphModel
from cairn_server.engine.nesting import NestedRuns
from cairn_server.engine.tasks import TaskNode, TaskStatus, root_task_id


class FunctionalRun(NestedRuns):
    """One run of an entrypoint on one checkpoint. A graph called from the
    entrypoint (or a task) runs as a subgraph (see nesting.py)."""

    def __init__(
        self,
        *,
        checkpoint: CheckpointRecord,
        target: str,
        writes: Iterable[PendingWrite] = (),
        retry_policy: RetryPolicy | None = None,
        new_checkpoint_id: Callable[[], str] = lambda: "",
        now: Callable[[], float] = lambda: 0.0,
        run_id: str = "",
        metadata: dict[str, Json] | None = None,
        graphs: Callable[[str], GraphModel | None] = lambda name: None,
    ) -> None:
        super().__init__(
            checkpoint,
            new_checkpoint_id=new_checkpoint_id,
            now=now,
            run_id=run_id,
            metadata=metadata,
        )
        self.target = target
        self._graphs = graphs
        self.root_id = root_task_id(checkpoint.thread_id, checkpoint.checkpoint_id)
        root = TaskNode(
            self.root_id,
            target,
            "",
            -1,
            input=checkpoint.channel_values.get(checkpoints.START),
            retry_policy=retry_policy,
        )
        self.tasks[root.id] = root
        writes = list(writes)
        self._restore(writes)
        self._note_subgraphs(writes)
        self._save: Json = None

    @property
    def root(self) -> TaskNode:
        return self.tasks[self.root_id]

    def start(self) -> list[Decision]:
        """Dispatch the entrypoint with its journal and resume values."""
        root = self.root
        root.status = TaskStatus.QUEUED
        root.attempt = 1
        root.error = None
        return [self._dispatch(root)]

    def _spawn(
        self,
        task: TaskNode,
        namespace: str,
        checkpoint: CheckpointRecord | None,
        writes: Iterable[PendingWrite],
    ) -> tuple[NestedRuns, list[Decision]] | None:
        graph = None if task.is_root else self._graphs(task.name)
        if graph is None:
            return None
        return GraphRun.subgraph_run(
            graph,
            host=self,
            namespace=namespace,
            input=task.input,
            checkpoint=checkpoint,
            writes=writes,
            graphs=self._graphs,
        )

    def _may_sleep(self, task: TaskNode) -> bool:
        return task.id == self.root_id

    def _subgraph_result(self, task: TaskNode, output: Json) -> Json:
        return output

    def _root_completed(self, task: TaskNode, save: Json, has_save: bool) -> list[Decision]:
        self._save = save if has_save else task.result
        return [
            Emit(StreamMode.TASKS, self._task_result(task), task.path),
            Emit(StreamMode.UPDATES, {task.name: task.result}, task.path),
            Emit(StreamMode.VALUES, task.result),
        ]

    def _settle(self) -> list[Decision]:
        """Finish the run once the entrypoint stopped and no task is running,
        or park it when the entrypoint sleeps. Tasks still queued or waiting
        for a retry when the entrypoint stopped are withdrawn; running ones
        are awaited so their results are kept."""
        root = self.root
        if self.finished or root.status.in_flight:
            return []
        waiting = [
            t.id
            for t in self.tasks.values()
            if t.status in (TaskStatus.QUEUED, TaskStatus.RETRY_WAIT)
        ]
        decisions: list[Decision] = []
        if waiting:
            for task_id in waiting:
                self.tasks[task_id].status = TaskStatus.CANCELLED
            decisions.append(Cancel(tuple(waiting)))
        if any(t.status is TaskStatus.RUNNING for t in self.tasks.values()):
            return decisions
        self.finished = True
        interrupts = tuple(self.pending_interrupts())
        if root.status is TaskStatus.FAILED:
            decisions.append(Finish("failed", error=root.error))
        elif interrupts:
            decisions.append(Finish("interrupted", interrupts=interrupts))
        elif root.status is TaskStatus.SUSPENDED and (timers := self.sleeping_timers()):
            first = timers[0]
            assert first.wake_at is not None
            decisions.append(Park(first.wake_at, first.id, root.name))
        elif root.status is TaskStatus.DONE:
            final = checkpoints.final_checkpoint(
                parent=self.checkpoint,
                checkpoint_id=self.new_checkpoint_id(),
                output=root.result,
                save=self._save,
                run_id=self.run_id,
                target=self.target,
                metadata=self.run_metadata,
                now=self.now(),
            )
            decisions.append(NewCheckpoint(final))
            chunk = checkpoints.checkpoint_chunk(final, values=root.result, next=[], tasks=[])
            decisions.append(Emit(StreamMode.CHECKPOINTS, chunk))
            decisions.append(Finish("succeeded", output=root.result))
        else:
            error = ErrorRecord("RuntimeError", "the entrypoint stopped without a result")
            decisions.append(Finish("failed", error=error))
        return decisions
