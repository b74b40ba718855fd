"""JSON nested deeper than Cairn carries (MAX_JSON_DEPTH = 24 levels of arrays
and objects): the SDK refuses it before sending, so a task whose result,
interrupt value, stream chunk or call input is too deep fails at once with a
typed, non-retryable error, and a run never hangs on it (issue 15, item 3:
with local calls a 50-level result left the run `running` for good). Values
at the limit travel intact, in every stream mode."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cairn import (
    Client,
    JsonTooDeepError,
    RunFailedError,
    RunState,
    ThreadNotFoundError,
    entrypoint,
    get_stream_writer,
    interrupt,
    task,
)
from cairn._values import MAX_JSON_DEPTH

WAIT = 20.0


def nested(depth: int, *, lists: bool = False) -> Any:
    """A value `depth` arrays or objects deep."""
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if lists and level % 2 else {"next": value}
    return value


calls: list[str] = []


@task
def make_value(depth: int) -> Any:
    calls.append("make_value")
    return nested(depth)


@entrypoint()
def returns_task_value(depth: int) -> Any:
    return make_value(depth).result()


@task
def consume(value: Any) -> str:
    return "consumed"


@entrypoint()
def sends_deep_input(depth: int) -> str:
    return consume(nested(depth)).result()


@task
def asks_deeply(depth: int) -> Any:
    return interrupt(nested(depth))


@entrypoint()
def interrupts_deeply(depth: int) -> Any:
    return asks_deeply(depth).result()


@entrypoint()
def writes_deeply(depth: int) -> str:
    get_stream_writer()(nested(depth))
    return "written"


FUNCTIONS = [make_value, returns_task_value, consume, sends_deep_input]
FUNCTIONS += [asks_deeply, interrupts_deeply, writes_deeply]


async def failed_run(client: Client, target: Any, depth: int, thread_id: str) -> RunFailedError:
    with pytest.raises(RunFailedError) as failed:
        await asyncio.wait_for(client.invoke(target, depth, thread_id=thread_id), WAIT)
    return failed.value


async def thread_is_free(client: Client, thread_id: str) -> None:
    """The failed run ended: the thread takes a new run, which succeeds."""
    run = await asyncio.wait_for(client.invoke(returns_task_value, 3, thread_id=thread_id), WAIT)
    assert run.state is RunState.SUCCEEDED
    assert run.output == nested(3)


@pytest.mark.parametrize("local_calls", [True, False], ids=["local-calls", "dispatched-calls"])
async def test_a_task_result_nested_50_levels_fails_the_run_at_once(
    client: Client, start_worker: Any, local_calls: bool
) -> None:
    calls.clear()
    await start_worker(FUNCTIONS, local_calls=local_calls)
    failed = await failed_run(client, returns_task_value, 50, f"deep-{local_calls}")
    error = failed.run.error
    assert error is not None
    assert error.type == "JsonTooDeepError"
    assert f"{MAX_JSON_DEPTH} levels" in error.message
    assert calls == ["make_value"], "the error is not retried"
    runs = await client.list_runs(f"deep-{local_calls}")
    assert [r.state for r in runs] == [RunState.FAILED]
    await thread_is_free(client, f"deep-{local_calls}")


async def test_a_value_at_the_limit_travels_intact_in_every_stream_mode(
    client: Client, start_worker: Any
) -> None:
    await start_worker(FUNCTIONS)
    run = await asyncio.wait_for(
        client.invoke(returns_task_value, MAX_JSON_DEPTH, thread_id="at-limit"), WAIT
    )
    assert run.output == nested(MAX_JSON_DEPTH)
    modes = ["values", "updates", "custom", "tasks", "checkpoints", "debug"]
    events = [
        event
        async for event in client.stream(
            returns_task_value, MAX_JSON_DEPTH, thread_id="at-limit-stream", stream_mode=modes
        )
    ]
    assert events[-1].run is not None and events[-1].run.output == nested(MAX_JSON_DEPTH)
    assert {e.mode for e in events if e.run is None} >= {"updates", "tasks", "debug"}
    state = await client.get_state("at-limit-stream")
    assert state.values == nested(MAX_JSON_DEPTH)
    history = await client.get_state_history("at-limit-stream")
    assert history


async def test_a_client_call_with_a_value_too_deep_is_refused_before_sending(
    client: Client, start_worker: Any
) -> None:
    await start_worker(FUNCTIONS)
    with pytest.raises(JsonTooDeepError) as refused:
        await client.invoke(returns_task_value, nested(MAX_JSON_DEPTH + 1), thread_id="refused")
    assert refused.value.reason == "JSON_TOO_DEEP"
    assert refused.value.metadata["limit"] == str(MAX_JSON_DEPTH)
    with pytest.raises(JsonTooDeepError):
        await client.create_thread("refused", metadata={"deep": nested(MAX_JSON_DEPTH)})
    with pytest.raises(ThreadNotFoundError):
        await client.get_thread("refused")


@pytest.mark.parametrize("local_calls", [True, False], ids=["local-calls", "dispatched-calls"])
async def test_a_call_with_an_input_too_deep_fails_its_caller(
    client: Client, start_worker: Any, local_calls: bool
) -> None:
    await start_worker(FUNCTIONS, local_calls=local_calls)
    failed = await failed_run(client, sends_deep_input, 40, f"deep-input-{local_calls}")
    assert failed.run.error is not None and failed.run.error.type == "JsonTooDeepError"
    await thread_is_free(client, f"deep-input-{local_calls}")


async def test_an_interrupt_value_too_deep_fails_its_task(
    client: Client, start_worker: Any
) -> None:
    await start_worker(FUNCTIONS)
    failed = await failed_run(client, interrupts_deeply, 40, "deep-interrupt")
    assert failed.run.error is not None and failed.run.error.type == "JsonTooDeepError"
    assert not failed.run.interrupts
    await thread_is_free(client, "deep-interrupt")


async def test_a_stream_chunk_too_deep_fails_its_task(client: Client, start_worker: Any) -> None:
    await start_worker(FUNCTIONS)
    failed = await failed_run(client, writes_deeply, 40, "deep-chunk")
    assert failed.run.error is not None and failed.run.error.type == "JsonTooDeepError"
    await thread_is_free(client, "deep-chunk")
