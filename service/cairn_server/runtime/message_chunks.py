"""The run's part of a `messages` chunk's metadata.

A worker sends each chat-model token as `{"message": ..., "metadata": {...}}`
(TaskAssignment.stream_messages) with what it knows: the node or task name,
the tags, the model's `ls_*` keys. Where the task stands in the run is known
here only, so the service adds LangGraph's `langgraph_step`,
`langgraph_triggers` and, for a task that a step pulled (a graph node),
`langgraph_path`, unless the worker set them.
"""

from __future__ import annotations

from typing import Any

from cairn_server.domain import Json

PUSH = "__pregel_push"
"""LangGraph's trigger of a Send packet and of a called task: such a task has
no path of its own in a step."""


def placed(data: Json, step: int, started: dict[str, Any] | None) -> Json:
    """`data` with the step the task runs in and, from `started` (the
    engine's `tasks` chunk of the task), its triggers and path. Data that is
    not shaped as a messages chunk passes as it came."""
    if not isinstance(data, dict) or not isinstance(data.get("metadata"), dict):
        return data
    metadata = dict(data["metadata"])
    metadata.setdefault("langgraph_step", step)
    if started is not None:
        triggers = list(started.get("triggers", []))
        metadata.setdefault("langgraph_triggers", triggers)
        if PUSH not in triggers and "name" in started:
            metadata.setdefault("langgraph_path", ["__pregel_pull", started["name"]])
    return {**data, "metadata": metadata}
