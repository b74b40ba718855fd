"""What GetState shows for a checkpoint of a functional run."""

from __future__ import annotations

from dataclasses import dataclass, field

from cairn_server.domain import CheckpointRecord, ErrorRecord, InterruptRecord, Json, PendingWrite
from cairn_server.engine import checkpoints
from cairn_server.engine.functional import FunctionalRun
from cairn_server.engine.graph import GraphRun, next_nodes, state_of
from cairn_server.engine.graph_model import GraphModel
from cairn_server.engine.tasks import TaskNode, TaskStatus


@dataclass(slots=True)
class TaskView:
    id: str
    name: str
    path: tuple[str, ...] = ()
    has_result: bool = False
    result: Json = None
    error: ErrorRecord | None = None
    interrupts: list[InterruptRecord] = field(default_factory=list)


@dataclass(slots=True)
class StateView:
    checkpoint: CheckpointRecord | None
    values: Json = None
    next: list[str] = field(default_factory=list)
    tasks: list[TaskView] = field(default_factory=list)
    interrupts: list[InterruptRecord] = field(default_factory=list)


def state_view(
    checkpoint: CheckpointRecord | None,
    writes: list[PendingWrite],
    graph: GraphModel | None = None,
) -> StateView:
    """The state at `checkpoint`. For a graph: the state keys, the next nodes
    and the outcome of the step's tasks. For an entrypoint: its output when
    finished; otherwise the entrypoint still to run and the outcome of each
    task called so far."""
    if checkpoint is None:
        return StateView(None)
    if graph is not None:
        steps = GraphRun(graph=graph, checkpoint=checkpoint, writes=writes)
        return StateView(
            checkpoint,
            values=state_of(graph, checkpoint),
            next=next_nodes(checkpoint),
            tasks=[_task_view(t) for t in steps.node_tasks() if t.label],
            interrupts=steps.pending_interrupts(),
        )
    if not checkpoints.is_unfinished(checkpoint):
        return StateView(checkpoint, values=checkpoint.channel_values.get(checkpoints.END))
    target = str(checkpoint.metadata.get("target", ""))
    run = FunctionalRun(checkpoint=checkpoint, target=target, writes=writes)
    tasks = [_task_view(t) for t in run.tasks.values()]
    return StateView(
        checkpoint, values=None, next=[target], tasks=tasks, interrupts=run.pending_interrupts()
    )


def _task_view(task: TaskNode) -> TaskView:
    pending = task.pending_interrupt
    return TaskView(
        id=task.id,
        name=task.label or task.name,
        path=task.path,
        has_result=task.status is TaskStatus.DONE,
        result=task.result,
        error=task.error,
        interrupts=[pending] if pending else [],
    )
