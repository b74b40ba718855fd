"""No run is left `running` without a reason: what LangGraph accepts runs,
durability exit stores one checkpoint, and a failure inside a run's driver
ends the run instead of leaving its thread busy."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

import pytest

from cairn import (
    END,
    START,
    Client,
    Command,
    RunFailedError,
    RunState,
    StateGraph,
    entrypoint,
    interrupt,
    task,
)
from cairn_server.engine.graph import GraphRun


class JokeState(TypedDict):
    topic: str
    joke: str


def write_joke(state: JokeState) -> dict:
    # As the "with task" example of LangGraph's durable-execution guide: a
    # key the state does not declare, which LangGraph drops.
    return {"joke": f"a joke about {state['topic']}", "extra": 1}


jokes = (
    StateGraph(JokeState)
    .add_node("write_joke", write_joke)
    .add_edge(START, "write_joke")
    .add_edge("write_joke", END)
    .compile(name="jokes")
)


async def test_an_unknown_key_in_a_node_update_is_dropped_as_langgraph_does(
    client: Client, start_worker: Any
) -> None:
    await start_worker([jokes])
    run = await client.invoke(jokes, {"topic": "cats"}, thread_id="jokes")
    assert run.state is RunState.SUCCEEDED
    assert run.output == {"topic": "cats", "joke": "a joke about cats"}
    assert (await client.get_thread("jokes")).status == "idle"
    # The thread takes the next run.
    again = await client.invoke(jokes, {"topic": "owls"}, thread_id="jokes")
    assert again.output == {"topic": "owls", "joke": "a joke about owls"}


class ChainState(TypedDict):
    log: Annotated[list, operator.add]


def step_a(state: ChainState) -> dict:
    return {"log": ["a"]}


def step_b(state: ChainState) -> dict:
    return {"log": ["b"]}


def ask(state: ChainState) -> dict:
    answer = interrupt("go on?")
    return {"log": [f"c:{answer}"]}


chain = (
    StateGraph(ChainState)
    .add_node("a", step_a)
    .add_node("b", step_b)
    .add_node("c", ask)
    .add_edge(START, "a")
    .add_edge("a", "b")
    .add_edge("b", "c")
    .add_edge("c", END)
    .compile(name="exit_chain")
)


@task
def shout(text: str) -> str:
    return text.upper()


@entrypoint()
def shouter(text: str) -> str:
    return shout(text).result() + shout(text + "!").result()


async def test_durability_exit_stores_only_the_final_checkpoint(
    client: Client, start_worker: Any
) -> None:
    await start_worker([chain, shout, shouter])
    run = await client.invoke(chain, {"log": []}, thread_id="g", durability="exit")
    assert run.state is RunState.INTERRUPTED
    history = await client.get_state_history("g")
    assert len(history) == 1
    state = history[0]
    assert state.values == {"log": ["a", "b"]}
    assert state.next == ("c",)
    assert state.parent_config is None
    assert [i.value for i in state.interrupts] == ["go on?"]

    run = await client.invoke(chain, Command(resume="yes"), thread_id="g", durability="exit")
    assert run.output == {"log": ["a", "b", "c:yes"]}
    history = await client.get_state_history("g")
    assert len(history) == 2  # one per run, the newest a child of the first
    assert history[0].values == {"log": ["a", "b", "c:yes"]}
    assert history[0].parent_config == history[1].config

    run = await client.invoke(shouter, "hi", thread_id="f", durability="exit")
    assert run.output == "HIHI!"
    history = await client.get_state_history("f")
    assert len(history) == 1
    assert (await client.get_state("f")).values == "HIHI!"


async def test_a_failure_inside_the_run_driver_fails_the_run_and_frees_the_thread(
    client: Client, start_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug the engine raises while applying a result (simulated here) ends
    the run FAILED with a typed error, instead of leaving it running and
    its thread busy for good."""
    await start_worker([jokes])
    original = GraphRun.completed

    def broken(self: GraphRun, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the engine")

    monkeypatch.setattr(GraphRun, "completed", broken)
    with pytest.raises(RunFailedError) as failure:
        await client.invoke(jokes, {"topic": "cats"}, thread_id="bug")
    assert failure.value.run.error is not None
    assert failure.value.run.error.type == "RunDriverError"
    assert (await client.get_thread("bug")).status == "error"
    [run] = await client.list_runs("bug")
    assert run.state is RunState.FAILED

    monkeypatch.setattr(GraphRun, "completed", original)
    retried = await client.invoke(jokes, None, thread_id="bug")
    assert retried.output == {"topic": "cats", "joke": "a joke about cats"}
