"""State APIs of graph threads: UpdateState, and forking from an older
checkpoint so that both branches stay in the history."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

import pytest

from cairn import (
    END,
    START,
    Client,
    FailedPreconditionError,
    InvalidArgumentError,
    StateGraph,
    ThreadBusyError,
    UnimplementedError,
    entrypoint,
)


class Log(TypedDict):
    log: Annotated[list, operator.add]


def step_a(state: Log) -> dict:
    return {"log": ["a"]}


def step_b(state: Log) -> dict:
    return {"log": ["b"]}


def step_c(state: Log) -> dict:
    return {"log": ["c"]}


def pick(state: Log) -> str:
    return "c"


three_steps = (
    StateGraph(Log)
    .add_node("a", step_a)
    .add_node("b", step_b)
    .add_node("c", step_c)
    .add_edge(START, "a")
    .add_edge("a", "b")
    .add_edge("b", "c")
    .add_edge("c", END)
    .compile(name="three_steps")
)


async def test_fork_from_step_1_with_update_state_keeps_both_branches(
    client: Client, start_worker
) -> None:
    await start_worker([three_steps])
    done = await client.invoke(three_steps, {"log": []}, thread_id="tt")
    assert done.output == {"log": ["a", "b", "c"]}
    original = await client.get_state_history("tt")
    after_a = next(s for s in original if s.metadata["step"] == 1)
    assert after_a.values == {"log": ["a"]} and after_a.next == ("b",)

    forked = await client.update_state(
        "tt",
        {"log": ["edited"]},
        as_node="a",
        checkpoint_id=after_a.config["configurable"]["checkpoint_id"],
    )
    assert forked.values == {"log": ["a", "edited"]}
    assert forked.next == ("b",)
    assert forked.metadata["source"] == "update"
    assert forked.parent_config == after_a.config

    resumed = await client.invoke(three_steps, None, thread_id="tt")
    assert resumed.output == {"log": ["a", "edited", "b", "c"]}

    history = await client.get_state_history("tt")
    assert len(history) == len(original) + 3  # the update and two new steps
    ids = {s.config["configurable"]["checkpoint_id"]: s for s in history}
    # The old branch is intact: its last checkpoint still holds the old state.
    assert ids[original[0].config["configurable"]["checkpoint_id"]].values == done.output
    # The new branch hangs off the checkpoint after step 1.
    newest = history[0]
    chain = [newest]
    while chain[-1].parent_config is not None:
        chain.append(ids[chain[-1].parent_config["configurable"]["checkpoint_id"]])
    assert [s.metadata["source"] for s in chain] == [
        "loop",
        "loop",
        "update",
        "loop",
        "loop",
        "input",
    ]
    assert (await client.get_state("tt")).values == resumed.output


async def test_rerun_from_an_older_checkpoint_forks(client: Client, start_worker) -> None:
    await start_worker([three_steps])
    await client.invoke(three_steps, {"log": []}, thread_id="replay")
    history = await client.get_state_history("replay")
    after_b = next(s for s in history if s.metadata["step"] == 2)
    again = await client.invoke(
        three_steps,
        None,
        thread_id="replay",
        checkpoint_id=after_b.config["configurable"]["checkpoint_id"],
    )
    assert again.output == {"log": ["a", "b", "c"]}
    after = await client.get_state_history("replay")
    assert len(after) == len(history) + 1
    assert after[0].parent_config == after_b.config


routed = (
    StateGraph(Log)
    .add_node("a", step_a)
    .add_node("c", step_c)
    .add_edge(START, "a")
    .add_conditional_edges("a", pick)
    .compile(name="routed")
)


@entrypoint()
def plain(x: int) -> int:
    return x


async def test_update_state_errors(client: Client, start_worker) -> None:
    await start_worker([three_steps, routed, plain])
    await client.invoke(three_steps, {"log": []}, thread_id="errs")
    with pytest.raises(InvalidArgumentError) as unknown:
        await client.update_state("errs", {"log": ["x"]}, as_node="nope")
    assert unknown.value.reason == "INVALID_ARGUMENT"
    with pytest.raises(InvalidArgumentError):
        await client.update_state("errs", {"nope": 1}, as_node="a")
    await client.invoke(routed, {"log": []}, thread_id="routed")
    with pytest.raises(UnimplementedError) as routers:
        await client.update_state("routed", {"log": ["x"]}, as_node="a")
    assert routers.value.reason == "UNSUPPORTED"
    await client.invoke(plain, 1, thread_id="plain")
    with pytest.raises(FailedPreconditionError) as not_graph:
        await client.update_state("plain", {"x": 1}, as_node="a")
    assert not_graph.value.reason == "NOT_A_GRAPH"
    assert ThreadBusyError.__mro__[1] is FailedPreconditionError
