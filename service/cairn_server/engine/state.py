"""What GetState shows for a checkpoint of a functional run."""

from __future__ import annotations

from dataclasses import dataclass, field

from cairn_server.domain import CheckpointRecord, ErrorRecord, InterruptRecord, Json, PendingWrite
from cairn_server.engine import checkpoints
from cairn_server.engine.functional import FunctionalRun
from cairn_server.engine.tasks import TaskStatus


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


def state_view(checkpoint: CheckpointRecord | None, writes: list[PendingWrite]) -> StateView:
    """The state at `checkpoint`: its output when finished; otherwise the
    entrypoint still to run, and the outcome of each task called so far."""
    if checkpoint is None:
        return StateView(None)
    if not checkpoints.is_unfinished(checkpoint):
        return StateView(checkpoint, values=checkpoint.channel_values.get(checkpoints.END))
    target = str(checkpoint.metadata.get("target", ""))
    run = FunctionalRun(checkpoint=checkpoint, target=target, writes=writes)
    tasks = []
    for task in run.tasks.values():
        pending = task.pending_interrupt
        tasks.append(
            TaskView(
                id=task.id,
                name=task.name,
                path=task.path,
                has_result=task.status is TaskStatus.DONE,
                result=task.result,
                error=task.error,
                interrupts=[pending] if pending else [],
            )
        )
    return StateView(
        checkpoint, values=None, next=[target], tasks=tasks, interrupts=run.pending_interrupts()
    )
