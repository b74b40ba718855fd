"""What GetState shows for a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field

from cairn_server.domain import CheckpointRecord, ErrorRecord, InterruptRecord, Json, PendingWrite
from cairn_server.engine import checkpoints
from cairn_server.engine.functional import FunctionalRun
from cairn_server.engine.graph import GraphRun, next_nodes, state_of
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


def graph_state_view(steps: GraphRun) -> StateView:
    """The state at a graph checkpoint: the state keys, the next nodes, and
    the outcome of the step's tasks (with the interrupts of their subgraphs
    when those are attached)."""
    checkpoint = steps.checkpoint
    tasks = [_task_view(t, steps.interrupts_of(t)) for t in steps.node_tasks()]
    upcoming = next_nodes(checkpoint)
    done = [task.has_result for task in tasks]
    if any(done) and not all(done):
        # As LangGraph: in a step that stopped (a node failed or was
        # interrupted), the nodes that finished do not run again.
        upcoming = [task.name for task in tasks if not task.has_result]
    return StateView(
        checkpoint,
        values=state_of(steps.graph, checkpoint),
        next=upcoming,
        tasks=tasks,
        interrupts=steps.pending_interrupts(),
    )


def functional_state_view(checkpoint: CheckpointRecord, writes: list[PendingWrite]) -> StateView:
    """The state at a checkpoint of an entrypoint: its output when finished;
    otherwise the entrypoint still to run and the outcome of each task called
    so far."""
    if not checkpoints.is_unfinished(checkpoint):
        return StateView(checkpoint, values=checkpoint.channel_values.get(checkpoints.END))
    target = str(checkpoint.metadata.get("target", ""))
    run = FunctionalRun(checkpoint=checkpoint, target=target, writes=writes)
    tasks = [_task_view(t) for t in run.tasks.values()]
    return StateView(
        checkpoint, values=None, next=[target], tasks=tasks, interrupts=run.pending_interrupts()
    )


def _task_view(task: TaskNode, interrupts: list[InterruptRecord] | None = None) -> TaskView:
    pending = task.pending_interrupt
    if interrupts is None:
        interrupts = [pending] if pending else []
    return TaskView(
        id=task.id,
        name=task.label or task.name,
        path=task.path,
        has_result=task.status is TaskStatus.DONE,
        result=task.result,
        error=task.error,
        interrupts=interrupts,
    )
