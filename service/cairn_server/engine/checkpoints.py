"""Checkpoints of functional runs.

An entrypoint run writes two checkpoints, as LangGraph's functional API does:
an input checkpoint (source "input", step -1) that its task results hang on as
pending writes, and when it succeeds a final one (source "loop", step 0) with
the output. Channels:

    __start__     the entrypoint's input
    __end__       its return value
    __previous__  the value saved for the next run (`entrypoint.final(save=)`)

A channel's version is the id of the checkpoint that last wrote it: unique
across the branches of a thread (a fork never reuses a version) and ordered
by creation. The other channels keep their version, so the store writes their
values only once.
"""

from __future__ import annotations

from cairn_server import namespaces
from cairn_server.domain import CheckpointRecord, Json

START, END, PREVIOUS = "__start__", "__end__", "__previous__"
# Set on a graph checkpoint with no next node whose run has not ended: it
# stopped at interrupt_after on its last step, or an UpdateState wrote over
# such an unfinished checkpoint. A resume ends the run with the state.
UNFINISHED = "__unfinished__"
# Checkpoint metadata Cairn keeps for itself; stream chunks show LangGraph's
# metadata (the run's metadata, source, step, parents).
PRIVATE_METADATA = ("run_id", "target", "writes", "next")


def checkpoint_config(checkpoint: CheckpointRecord, checkpoint_id: str) -> dict[str, Json]:
    return {
        "configurable": {
            "thread_id": namespaces.unscoped(checkpoint.thread_id),
            "checkpoint_ns": checkpoint.checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def checkpoint_chunk(
    checkpoint: CheckpointRecord, *, values: Json, next: list[str], tasks: list[Json]
) -> dict[str, Json]:
    """A `checkpoints` stream chunk, as LangGraph's."""
    parent = checkpoint.parent_checkpoint_id
    return {
        "config": checkpoint_config(checkpoint, checkpoint.checkpoint_id),
        "parent_config": checkpoint_config(checkpoint, parent) if parent else None,
        "values": values,
        "metadata": {k: v for k, v in checkpoint.metadata.items() if k not in PRIVATE_METADATA},
        "next": next,
        "tasks": tasks,
    }


def is_unfinished(checkpoint: CheckpointRecord) -> bool:
    """A checkpoint with work left: an input checkpoint whose entrypoint has
    not succeeded yet, or a graph checkpoint with next nodes or UNFINISHED."""
    return (
        checkpoint.metadata.get("source") == "input"
        or bool(checkpoint.metadata.get("next"))
        or bool(checkpoint.channel_values.get(UNFINISHED))
    )


def previous_value(checkpoint: CheckpointRecord | None) -> tuple[bool, Json]:
    """(has_previous, value) for a run starting after `checkpoint`."""
    if checkpoint is None or PREVIOUS not in checkpoint.channel_values:
        return False, None
    return True, checkpoint.channel_values[PREVIOUS]


def input_checkpoint(
    *,
    thread_id: str,
    checkpoint_id: str,
    parent: CheckpointRecord | None,
    input: Json,
    run_id: str,
    target: str,
    metadata: dict[str, Json],
    now: float,
) -> CheckpointRecord:
    versions = dict(parent.channel_versions) if parent else {}
    versions[START] = checkpoint_id
    values: dict[str, Json] = {START: input}
    if parent is not None and PREVIOUS in parent.channel_values:
        values[PREVIOUS] = parent.channel_values[PREVIOUS]  # carried, not re-written
    return CheckpointRecord(
        thread_id=thread_id,
        checkpoint_ns="",
        checkpoint_id=checkpoint_id,
        parent_checkpoint_id=parent.checkpoint_id if parent else None,
        channel_values=values,
        channel_versions=versions,
        metadata={
            **metadata,
            "source": "input",
            "step": -1,
            "run_id": run_id,
            "target": target,
            "writes": {START: input},
            "parents": {},
        },
        created_at=now,
    )


def final_checkpoint(
    *,
    parent: CheckpointRecord,
    checkpoint_id: str,
    output: Json,
    save: Json,
    run_id: str,
    target: str,
    metadata: dict[str, Json],
    now: float,
) -> CheckpointRecord:
    return CheckpointRecord(
        thread_id=parent.thread_id,
        checkpoint_ns="",
        checkpoint_id=checkpoint_id,
        parent_checkpoint_id=parent.checkpoint_id,
        channel_values={**parent.channel_values, END: output, PREVIOUS: save},
        channel_versions={
            **parent.channel_versions,
            END: checkpoint_id,
            PREVIOUS: checkpoint_id,
        },
        metadata={
            **metadata,
            "source": "loop",
            "step": 0,
            "run_id": run_id,
            "target": target,
            "writes": {target: output},
            "parents": {},
        },
        created_at=now,
    )
