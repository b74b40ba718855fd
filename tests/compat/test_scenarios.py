"""Runs every scenario of compat/scenarios through the Python SDK against a
real server (the in-process one of tests/conftest.py)."""

from __future__ import annotations

import asyncio
import json
import pathlib
import uuid
from typing import Any

import pytest

from cairn import CairnError, Client, Command, Run, RunFailedError, Worker
from tests.compat.interpreter import Scenario

SCENARIOS = {
    path.stem: json.loads(path.read_text())
    for path in sorted((pathlib.Path(__file__).parents[2] / "compat" / "scenarios").glob("*.json"))
}


class Workers:
    """The scenario's worker; `drop` ends its stream while it holds tasks."""

    def __init__(self, address: str, functions: list[Any]) -> None:
        self.address = address
        self.functions = functions
        self.current: tuple[Worker, asyncio.Task[None]] | None = None

    async def start(self) -> None:
        worker = Worker(self.address, functions=self.functions)
        runner = asyncio.ensure_future(worker.run())
        self.current = (worker, runner)
        await asyncio.wait_for(worker.connected.wait(), 10)

    async def drop(self) -> None:
        assert self.current is not None
        worker, runner = self.current
        self.current = None
        await worker.stop(grace=0)
        await asyncio.wait_for(runner, 10)


def canonical(value: Any) -> str:
    """JSON with sorted keys: protobuf Structs do not keep key order."""
    return json.dumps(value, sort_keys=True)


def command_for(run: dict[str, Any], last: Run | None) -> Any:
    if "input" in run:
        return run["input"]
    if "resume" in run:
        return Command(resume=run["resume"])
    if "resume_by_id" in run:
        assert last is not None, "resume_by_id needs an interrupted run before it"
        by_value = {canonical(i.value): i.id for i in last.interrupts}
        return Command(
            resume={by_value[canonical(a["interrupt"])]: a["resume"] for a in run["resume_by_id"]}
        )
    assert run.get("retry"), f"a run needs input, resume, resume_by_id or retry: {run}"
    return None


async def perform(
    client: Client, target: str, value: Any, run: dict[str, Any], thread_id: str
) -> tuple[Run, list[list[Any]]]:
    """Invoke or stream one run; returns the final run and the stream chunks."""
    if "stream_mode" not in run:
        try:
            return await client.invoke(target, value, thread_id=thread_id), []
        except RunFailedError as failure:
            return failure.run, []
    chunks: list[list[Any]] = []
    final = None
    async for event in client.stream(
        target, value, thread_id=thread_id, stream_mode=run["stream_mode"]
    ):
        if event.run is not None:
            final = event.run
        else:
            chunks.append([event.mode, event.data])
    assert final is not None
    return final, chunks


def check(expect: dict[str, Any], run: Run, chunks: list[list[Any]], scenario: Scenario) -> None:
    if "state" in expect:
        assert run.state.value == expect["state"], run
    if "output" in expect:
        assert run.output == expect["output"]
    if "interrupts" in expect:
        got = sorted(canonical([i.value, i.index]) for i in run.interrupts)
        want = sorted(canonical([i["value"], i["index"]]) for i in expect["interrupts"])
        assert got == want
    if "error" in expect:
        assert run.error is not None
        error = expect["error"]
        if "type" in error:
            assert run.error.type == error["type"]
        if "message" in error:
            assert run.error.message == error["message"]
        for part in error.get("message_contains", []):
            assert part in run.error.message
    if "events" in expect:
        assert chunks == expect["events"]
    for name, count in expect.get("executions", {}).items():
        assert scenario.executions[name] == count, f"{name} started {scenario.executions[name]}x"


@pytest.mark.parametrize("name", SCENARIOS)
async def test_scenario(name: str, address: str, client: Client) -> None:
    spec = SCENARIOS[name]
    scenario = Scenario(spec)
    workers = Workers(address, list(scenario.functions.values()))
    await workers.start()
    thread_id = f"compat-{name}-{uuid.uuid4().hex[:8]}"
    last: Run | None = None
    try:
        for number, run in enumerate(spec["runs"]):
            value = command_for(run, last)
            expect = run["expect"]
            pending = asyncio.ensure_future(
                perform(client, spec["entrypoint"], value, run, thread_id)
            )
            if run.get("disconnect_on_stall"):
                await asyncio.wait_for(scenario.stalled.wait(), 30)
                await workers.drop()
                await workers.start()
            try:
                final, chunks = await asyncio.wait_for(pending, 60)
            except CairnError as error:
                assert "rpc_error" in expect, f"run {number} failed: {error!r}"
                assert error.code.name == expect["rpc_error"]["code"]
                assert error.reason == expect["rpc_error"]["reason"]
                continue
            assert "rpc_error" not in expect, f"run {number} should have failed"
            check(expect, final, chunks, scenario)
            last = final
    finally:
        if workers.current is not None:
            await workers.drop()
