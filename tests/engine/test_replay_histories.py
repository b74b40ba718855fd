"""The functional replay engine against recorded histories (golden JSON).

Each file in histories/ holds the pending writes a checkpoint starts with and
a list of steps: an event fed to the engine and the decisions it must return,
in order. Tasks are named by their call path ("root", "root/0", "root/0/1"),
which the test turns into the engine's derived task ids.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from cairn_server.domain import CheckpointRecord, ErrorRecord, PendingWrite, RetryPolicy
from cairn_server.engine.decisions import (
    Cancel,
    Decision,
    Deliver,
    Dispatch,
    Emit,
    Finish,
    NewCheckpoint,
    Park,
    Record,
    RetryLater,
)
from cairn_server.engine.functional import FunctionalRun
from cairn_server.engine.tasks import child_task_id, interrupt_id, root_task_id
from cairn_server.errors import ServiceError

HISTORIES = sorted(pathlib.Path(__file__).with_name("histories").glob("*.json"))
THREAD, CHECKPOINT = "thread-1", "checkpoint-1"


class Paths:
    """Symbolic task paths <-> derived task ids; interrupt ids read as
    "<path>#<index>"."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def id(self, path: str) -> str:
        parts = path.split("/")
        task_id = root_task_id(THREAD, CHECKPOINT)
        for index in parts[1:]:
            task_id = child_task_id(task_id, int(index))
        self.names[task_id] = path
        for index in range(4):
            self.names[interrupt_id(task_id, index)] = f"{path}#{index}"
        return task_id

    def path(self, task_id: str) -> str:
        return self.names[task_id]

    def readable(self, data: Any) -> Any:
        """`data` with every known id replaced by its symbolic name."""
        if isinstance(data, str):
            return self.names.get(data, data)
        if isinstance(data, list):
            return [self.readable(item) for item in data]
        if isinstance(data, dict):
            return {key: self.readable(value) for key, value in data.items()}
        return data


def initial_writes(paths: Paths, writes: list[dict[str, Any]]) -> list[PendingWrite]:
    result = []
    for write in writes:
        parent, index = write["path"].rsplit("/", 1)
        task_id = paths.id(write["path"])
        task_path = json.dumps([paths.id(parent), int(index), write["name"]], separators=(",", ":"))
        value = write["value"]
        if write["channel"] == "__interrupt__":
            value = {
                "id": interrupt_id(task_id, value["index"]),
                "value": value["value"],
                "task_id": task_id,
                "task_name": write["name"],
                "index": value["index"],
            }
        result.append(PendingWrite(task_id, write["idx"], write["channel"], value, task_path))
    return result


def summarize(paths: Paths, decision: Decision) -> dict[str, Any]:
    match decision:
        case Dispatch():
            for entry in decision.journal:
                paths.names.setdefault(
                    entry.task_id, f"{paths.path(decision.task_id)}/{entry.index}"
                )
            return {
                "dispatch": paths.path(decision.task_id),
                "name": decision.name,
                "attempt": decision.attempt,
                "input": decision.input,
                "journal": {str(e.index): [e.name, e.result] for e in decision.journal},
                "resume": list(decision.resume),
            }
        case Deliver():
            summary: dict[str, Any] = {
                "deliver": paths.path(decision.child_id),
                "to": paths.path(decision.parent_id),
            }
            if decision.has_result:
                summary["result"] = decision.result
            elif decision.error is not None:
                summary["error"] = [decision.error.type, decision.error.message]
            elif decision.interrupt is not None:
                summary["interrupt"] = [
                    paths.path(decision.interrupt.task_id),
                    decision.interrupt.index,
                    decision.interrupt.value,
                ]
            return summary
        case Record(writes):
            return {
                "record": [
                    [paths.path(w.task_id), w.channel, paths.readable(w.value)] for w in writes
                ]
            }
        case Emit(mode, data):
            return {"emit": mode.value, "data": paths.readable(data)}
        case RetryLater(task_id, delay):
            return {"retry": paths.path(task_id), "delay": delay}
        case Cancel(task_ids):
            return {"cancel": [paths.path(t) for t in task_ids]}
        case NewCheckpoint(checkpoint):
            return {
                "checkpoint": checkpoint.checkpoint_id,
                "parent": checkpoint.parent_checkpoint_id,
                "values": checkpoint.channel_values,
                "source": checkpoint.metadata["source"],
            }
        case Park(wake_at, timer_id, task_name):
            return {"park": paths.path(timer_id), "wake_at": wake_at, "entrypoint": task_name}
        case Finish():
            summary = {"finish": decision.state}
            if decision.state == "succeeded":
                summary["output"] = decision.output
            if decision.error is not None:
                summary["error"] = [decision.error.type, decision.error.message]
            if decision.interrupts:
                summary["interrupts"] = [
                    [paths.path(i.task_id), i.index, i.value] for i in decision.interrupts
                ]
            return summary
    raise AssertionError(decision)


def feed(engine: FunctionalRun, paths: Paths, step: dict[str, Any]) -> list[Decision]:
    event = step["event"]
    task = paths.id(step["task"]) if "task" in step else None
    if event == "start":
        return engine.start()
    if event == "resume":
        return engine.resolve_resume(value=step.get("value"), by_id=step.get("by_id"))
    if event == "assigned":
        assert task is not None
        engine.dispatched(task)
        return []
    if event == "schedule":
        assert task is not None
        paths.id(f"{step['task']}/{step['index']}")
        policy = RetryPolicy(**step["retry_policy"]) if "retry_policy" in step else None
        return engine.schedule(task, step["index"], step["name"], step.get("input"), policy)
    if event == "completed":
        assert task is not None
        return engine.completed(task, step["result"], step.get("save"), "save" in step)
    if event == "failed":
        assert task is not None
        error = ErrorRecord(step["type"], step["message"], retryable=step.get("retryable", False))
        return engine.failed(task, error, jitter=0.0)
    if event == "interrupted":
        assert task is not None
        return engine.interrupted(task, step["index"], step["value"])
    if event == "suspended":
        assert task is not None
        return engine.suspended(task)
    if event == "sleeping":
        assert task is not None
        paths.id(f"{step['task']}/{step['index']}")
        return engine.sleeping(task, step["index"], step["due"])
    if event == "wake":
        return engine.wake_timers(step["now"])
    if event == "lost":
        assert task is not None
        return engine.lost(task)
    if event == "retry_due":
        assert task is not None
        return engine.retry_due(task)
    raise AssertionError(f"unknown event {event}")


@pytest.mark.parametrize("history", HISTORIES, ids=lambda p: p.stem)
def test_history(history: pathlib.Path) -> None:
    spec = json.loads(history.read_text())
    paths = Paths()
    checkpoint = CheckpointRecord(
        thread_id=THREAD,
        checkpoint_ns="",
        checkpoint_id=CHECKPOINT,
        parent_checkpoint_id=None,
        channel_values={"__start__": spec["input"]},
        channel_versions={"__start__": 1},
        metadata={"source": "input", "step": -1},
        created_at=0.0,
    )
    engine = FunctionalRun(
        checkpoint=checkpoint,
        target=spec["target"],
        writes=initial_writes(paths, spec.get("writes", [])),
        new_checkpoint_id=lambda: "checkpoint-2",
    )
    paths.id("root")
    for number, step in enumerate(spec["steps"]):
        if "raises" in step:
            with pytest.raises(ServiceError) as raised:
                feed(engine, paths, step)
            assert raised.value.reason == step["raises"], f"step {number}"
            continue
        got = [summarize(paths, d) for d in feed(engine, paths, step)]
        assert got == step["decisions"], f"step {number} of {history.name}: {step['event']}"


def test_histories_exist() -> None:
    assert {p.stem for p in HISTORIES} >= {
        "fresh_run",
        "replay_with_journal",
        "resume_interrupt_by_index",
        "non_deterministic_replay",
        "retry_then_success",
        "sleep_parks_after_running_calls",
        "sleep_wakes_when_due",
        "sleep_replayed_keeps_its_due_time",
        "sleep_outside_entrypoint_fails",
    }
