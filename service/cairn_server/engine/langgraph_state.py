"""What GetState shows for a checkpoint a LangGraph application stored.

Such a thread was written through CheckpointService by LangGraph's own Pregel
loop, so the service has no graph spec for it. What LangGraph's get_state
shows is rebuilt from the checkpoint alone, as LangGraph's channels encode it:

- values: the state channels (names not starting with "__" and not LangGraph's
  "branch:"/"join:" trigger channels); for a functional entrypoint, which has
  none, its return value (channel "__end__");
- next: the nodes whose trigger channel ("branch:to:<node>", or "__start__" for
  the first node) holds a value at a version the node has not seen (a node
  that ran consumed its trigger: a newer version without a value), and the
  targets of pending Sends;
- tasks and interrupts: from the pending writes, grouped by task, the task's
  node named by its task path ("~__pregel_pull, <node>").

Values that cannot be decoded show as typed blobs (store/typed_values.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from cairn_server.domain import CheckpointRecord, ErrorRecord, InterruptRecord, Json, PendingWrite
from cairn_server.engine.state import StateView, TaskView

START = "__start__"
END = "__end__"
TASKS = "__pregel_tasks"
BRANCH_TO = "branch:to:"
ERROR = "__error__"
INTERRUPT = "__interrupt__"
_TRIGGER_PREFIXES = ("branch:", "join:")
_PULL = "~__pregel_pull, "


def langgraph_state_view(checkpoint: CheckpointRecord, writes: list[PendingWrite]) -> StateView:
    body = checkpoint.langgraph or {}
    tasks = _tasks(writes)
    interrupts = [i for task in tasks for i in task.interrupts]
    return StateView(
        checkpoint,
        values=_values(checkpoint.channel_values),
        next=_next(checkpoint, body, tasks),
        tasks=tasks,
        interrupts=interrupts,
    )


def _is_state(channel: str) -> bool:
    return not channel.startswith("__") and not channel.startswith(_TRIGGER_PREFIXES)


def _values(channels: dict[str, Json]) -> Json:
    state = {name: value for name, value in channels.items() if _is_state(name)}
    if not state and END in channels:
        return channels[END]
    return state


def _next(checkpoint: CheckpointRecord, body: dict[str, Json], tasks: list[TaskView]) -> list[str]:
    seen = body.get("versions_seen")
    versions_seen = seen if isinstance(seen, dict) else {}
    found: list[str] = []
    start_pending = False
    for channel, version in sorted(checkpoint.channel_versions.items()):
        if channel not in checkpoint.channel_values:
            continue
        if channel.startswith(BRANCH_TO):
            node = channel.removeprefix(BRANCH_TO)
            if _newer(version, _seen_by(versions_seen, node, channel)):
                found.append(node)
        elif channel == START:
            start_pending = not any(
                not _newer(version, _seen_by(versions_seen, node, START))
                for node in versions_seen
                if node != "__input__"
            )
    if start_pending:
        # The node START triggers is named only by the writes of its task: the
        # graph's "__start__" node, or a functional entrypoint.
        first = [t.name for t in tasks if t.name and t.name not in found]
        found.extend(first or [START])
    sends = checkpoint.channel_values.get(TASKS)
    found.extend(_send_targets(sends if isinstance(sends, list) else []))
    return list(dict.fromkeys(found))


def _seen_by(versions_seen: dict[str, Json], node: str, channel: str) -> Json:
    seen = versions_seen.get(node)
    return seen.get(channel) if isinstance(seen, dict) else None


def _newer(version: str, seen: Json) -> bool:
    """Whether `version` is after `seen`. LangGraph's versions are strings that
    sort in order, or (from older savers) integers."""
    if seen is None:
        return True
    try:
        return float(version) > float(str(seen))
    except ValueError:
        return version > str(seen)


def _send_targets(sends: Iterable[Json]) -> list[str]:
    targets = []
    for send in sends:
        if isinstance(send, dict) and isinstance(send.get("node"), str):
            targets.append(str(send["node"]))
    return targets


def _tasks(writes: list[PendingWrite]) -> list[TaskView]:
    """The pull tasks of the pending writes, in write order. Writes of tasks
    called inside them (`@task`, paths starting "~__pregel_push") count as
    their own tasks only when they failed or were interrupted."""
    tasks: dict[str, TaskView] = {}
    for write in writes:
        task = tasks.get(write.task_id)
        if task is None:
            name = write.task_path.removeprefix(_PULL) if write.task_path.startswith(_PULL) else ""
            task = tasks[write.task_id] = TaskView(id=write.task_id, name=name)
        if write.channel == ERROR:
            task.error = _error(write.value)
        elif write.channel == INTERRUPT:
            task.interrupts.extend(_interrupts(write.value, task))
        elif _is_state(write.channel) and task.name:
            result = task.result if isinstance(task.result, dict) else {}
            result[write.channel] = write.value
            task.result = result
            task.has_result = True
    return [t for t in tasks.values() if t.name or t.error is not None or t.interrupts]


def _error(value: Json) -> ErrorRecord:
    if isinstance(value, dict) and isinstance(value.get("$type"), str):
        args = value.get("value")
        message = args[0] if isinstance(args, list) and len(args) == 1 else args
        return ErrorRecord(type=str(value["$type"]).rsplit(".", 1)[-1], message=str(message))
    return ErrorRecord(type="Error", message=str(value))


def _interrupts(value: Json, task: TaskView) -> list[InterruptRecord]:
    found = []
    for index, item in enumerate(value if isinstance(value, list) else [value]):
        if isinstance(item, dict) and "value" in item:
            found.append(
                InterruptRecord(
                    id=str(item.get("id", "")),
                    value=item["value"],
                    task_id=task.id,
                    task_name=task.name,
                    index=index,
                )
            )
    return found
