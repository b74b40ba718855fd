"""The examples of LangGraph's functional-API and durable-execution docs,
ported to Cairn and run against a real server and worker."""

from __future__ import annotations

import asyncio
import collections
import pathlib
import random
import time

import pytest

from cairn import (
    Client,
    Command,
    RunFailedError,
    RunState,
    entrypoint,
    get_stream_writer,
    interrupt,
    task,
)

executions: collections.Counter[str] = collections.Counter()


@pytest.fixture(autouse=True)
def reset_counts() -> None:
    executions.clear()


# --- essay written by a task, then reviewed by a human ------------------------------------


@task
def write_essay(topic: str) -> str:
    executions["write_essay"] += 1
    time.sleep(0.01)
    return f"An essay about topic: {topic}"


@entrypoint()
def essay_workflow(topic: str) -> dict:
    essay = write_essay(topic).result()
    is_approved = interrupt({"essay": essay, "action": "Please approve/reject the essay"})
    return {"essay": essay, "is_approved": is_approved}


async def test_essay_review_interrupt_then_resume(client: Client, start_worker) -> None:
    await start_worker([write_essay, essay_workflow])
    run = await client.invoke(essay_workflow, "cat", thread_id="essay-1")
    assert run.state is RunState.INTERRUPTED
    [pending] = run.interrupts
    assert pending.value == {
        "essay": "An essay about topic: cat",
        "action": "Please approve/reject the essay",
    }
    state = await client.get_state("essay-1")
    assert state.next == ("essay_workflow",)
    assert [i.id for i in state.interrupts] == [pending.id]

    resumed = await client.invoke(essay_workflow, Command(resume=True), thread_id="essay-1")
    assert resumed.state is RunState.SUCCEEDED
    assert resumed.output == {"essay": "An essay about topic: cat", "is_approved": True}
    assert executions["write_essay"] == 1  # replayed from the journal, not re-run
    state = await client.get_state("essay-1")
    assert state.values == resumed.output and state.next == ()


# --- a task fails once; the resume does not re-run the slow task -------------------------

attempts = {"fail": 0}


@task
def slow_task(x: int) -> str:
    executions["slow_task"] += 1
    time.sleep(0.05)
    return "Ran slow task."


@task
def failing_task(x: int) -> str:
    executions["failing_task"] += 1
    if executions["failing_task"] == 1:
        raise Exception("Simulated failure")
    return "Ran failing task."


@entrypoint()
def flaky_workflow(inputs: dict) -> list:
    slow = slow_task(1).result()
    failing = failing_task(2).result()
    return [slow, failing]


async def test_resume_after_error_does_not_rerun_finished_task(client, start_worker) -> None:
    await start_worker([slow_task, failing_task, flaky_workflow])
    with pytest.raises(RunFailedError) as failure:
        await client.invoke(flaky_workflow, {"any_input": "foobar"}, thread_id="flaky")
    assert failure.value.run.error.type == "Exception"
    assert failure.value.run.error.message == "Simulated failure"
    run = await client.invoke(flaky_workflow, None, thread_id="flaky")
    assert run.output == ["Ran slow task.", "Ran failing task."]
    assert executions["slow_task"] == 1
    assert executions["failing_task"] == 2


# --- previous state ------------------------------------------------------------------------


@entrypoint()
def accumulate(number: int, *, previous: int | None = None) -> int:
    previous = previous or 0
    return number + previous


async def test_previous_state_gives_1_then_3(client, start_worker) -> None:
    await start_worker([accumulate])
    first = await client.invoke(accumulate, 1, thread_id="acc")
    second = await client.invoke(accumulate, 2, thread_id="acc")
    assert (first.output, second.output) == (1, 3)


@entrypoint()
def final_workflow(number: int, *, previous: int | None = None) -> entrypoint.final:
    previous = previous or 0
    # Return the previous value to the caller, save 2 * number for next time.
    return entrypoint.final(value=previous, save=2 * number)


async def test_entrypoint_final_separates_return_and_saved_value(client, start_worker) -> None:
    await start_worker([final_workflow])
    outputs = [
        (await client.invoke(final_workflow, n, thread_id="final")).output for n in (3, 1, 5)
    ]
    assert outputs == [0, 6, 2]


# --- parallel task calls -------------------------------------------------------------------

in_flight = {"now": 0, "max": 0}


@task
async def add_one(number: int) -> int:
    in_flight["now"] += 1
    in_flight["max"] = max(in_flight["max"], in_flight["now"])
    await asyncio.sleep(0.05)
    in_flight["now"] -= 1
    return number + 1


@entrypoint()
async def graph(numbers: list[int]) -> list[int]:
    futures = [add_one(i) for i in numbers]
    return list(await asyncio.gather(*futures))


async def test_parallel_add_one(client, start_worker) -> None:
    await start_worker([add_one, graph])
    run = await client.invoke(graph, [1, 2, 3, 4, 5], thread_id="par")
    assert run.output == [2, 3, 4, 5, 6]
    assert in_flight["max"] > 1  # the calls overlapped


# --- custom and updates stream events --------------------------------------------------------


@task
def shout(word: str) -> str:
    get_stream_writer()({"progress": f"shouting {word}"})
    return word.upper()


@entrypoint()
def stream_workflow(words: list[str]) -> str:
    writer = get_stream_writer()
    writer("starting")
    loud = [shout(w).result() for w in words]
    writer("done")
    return " ".join(loud)


async def test_custom_and_updates_events_in_order(client, start_worker) -> None:
    await start_worker([shout, stream_workflow])
    parts = [
        (event.mode, event.data)
        async for event in client.stream(
            stream_workflow, ["a", "b"], thread_id="stream", stream_mode=["custom", "updates"]
        )
        if event.mode != "lifecycle"
    ]
    assert parts == [
        ("custom", "starting"),
        ("custom", {"progress": "shouting a"}),
        ("updates", {"shout": "A"}),
        ("custom", {"progress": "shouting b"}),
        ("updates", {"shout": "B"}),
        ("custom", "done"),
        ("updates", {"stream_workflow": "A B"}),
    ]


# --- side effects and randomness inside tasks are not repeated on resume --------------------


@task
def write_file(path: str) -> str:
    with open(path, "a") as handle:
        handle.write("written\n")
    return path


@task
def pick_number(_: None) -> float:
    return random.random()


@entrypoint()
def side_effects(path: str) -> dict:
    write_file(path).result()
    number = pick_number(None).result()
    answer = interrupt({"number": number})
    return {"number": number, "answer": answer}


async def test_side_effect_and_random_number_stable_across_resume(
    client, start_worker, tmp_path: pathlib.Path
) -> None:
    await start_worker([write_file, pick_number, side_effects])
    target = tmp_path / "effects.txt"
    run = await client.invoke(side_effects, str(target), thread_id="fx")
    number = run.interrupts[0].value["number"]
    done = await client.invoke(side_effects, Command(resume="ok"), thread_id="fx")
    assert done.output == {"number": number, "answer": "ok"}
    assert target.read_text() == "written\n"


# --- two interrupts in one task, matched by index -------------------------------------------


@task
def ask_twice(name: str) -> list:
    age = interrupt(f"age of {name}?")
    city = interrupt(f"city of {name}?")
    return [age, city]


@entrypoint()
def questionnaire(name: str) -> list:
    return ask_twice(name).result()


async def test_two_interrupts_in_one_task_matched_by_index(client, start_worker) -> None:
    await start_worker([ask_twice, questionnaire])
    first = await client.invoke(questionnaire, "ada", thread_id="q")
    assert [i.value for i in first.interrupts] == ["age of ada?"]
    second = await client.invoke(questionnaire, Command(resume=36), thread_id="q")
    assert [i.value for i in second.interrupts] == ["city of ada?"]
    assert second.interrupts[0].id != first.interrupts[0].id
    done = await client.invoke(questionnaire, Command(resume="London"), thread_id="q")
    assert done.output == [36, "London"]


# --- an entrypoint calling another entrypoint -----------------------------------------------


@task
def double(x: int) -> int:
    return 2 * x


@entrypoint()
def inner(x: int) -> int:
    return double(x).result() + 1


@entrypoint()
def outer(x: int) -> dict:
    return {"inner": inner.invoke(x), "again": double(x).result()}


async def test_entrypoint_calls_entrypoint(client, start_worker) -> None:
    await start_worker([double, inner, outer])
    run = await client.invoke(outer, 5, thread_id="nested")
    assert run.output == {"inner": 11, "again": 10}
