"""What a run with durability exit stores when it ends."""

from __future__ import annotations

import dataclasses

from cairn_server.domain import CheckpointRecord, Json
from cairn_server.store import WriteSet


def keep_last(
    stored: list[CheckpointRecord], writes: list[WriteSet]
) -> tuple[list[CheckpointRecord], list[WriteSet]]:
    """What a run with durability exit stores when it ends: as LangGraph,
    only the last checkpoint of each namespace, with the writes made on it.

    A checkpoint holds the values of the channels whose version is new in
    it, so the last one takes over the values it still uses from the ones
    dropped, and its parent becomes the parent of the first one dropped (the
    checkpoint the run started from, stored earlier, or none)."""
    last: dict[str, CheckpointRecord] = {}
    first_parent: dict[str, str | None] = {}
    values: dict[str, dict[str, tuple[str, Json]]] = {}
    for checkpoint in stored:
        ns = checkpoint.checkpoint_ns
        first_parent.setdefault(ns, checkpoint.parent_checkpoint_id)
        seen = values.setdefault(ns, {})
        for channel, value in checkpoint.channel_values.items():
            seen[channel] = (checkpoint.channel_versions.get(channel, ""), value)
        last[ns] = checkpoint
    kept: list[CheckpointRecord] = []
    for ns, checkpoint in last.items():
        carried = {
            channel: value
            for channel, (version, value) in values[ns].items()
            if checkpoint.channel_versions.get(channel) == version
        }
        kept.append(
            dataclasses.replace(
                checkpoint,
                parent_checkpoint_id=first_parent[ns],
                channel_values={**carried, **checkpoint.channel_values},
            )
        )
    ids = {(c.checkpoint_ns, c.checkpoint_id) for c in kept}
    dropped = {(c.checkpoint_ns, c.checkpoint_id) for c in stored} - ids
    return kept, [w for w in writes if (w.checkpoint_ns, w.checkpoint_id) not in dropped]
