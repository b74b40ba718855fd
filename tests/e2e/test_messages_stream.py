"""Stream mode "messages" end to end (issue 19, part 4): a real `cairn serve`
and a real worker process whose entrypoint, task and graph node call
langchain-core's fake streaming chat model with a plain `model.invoke(...)`.
The client receives every token in order as LangGraph's `(message_chunk,
metadata)` pairs, also after disconnecting mid-run and reconnecting from its
last event id, and nothing of the kind when it did not ask for the mode."""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
from langchain_core.messages import AIMessageChunk
from langgraph.graph import START as LG_START
from langgraph.graph import StateGraph as LangGraphStateGraph

from cairn import Client, RunEvent, RunState
from tests import postgres
from tests.e2e import messages_app
from tests.e2e.processes import Process, free_port, start_server, stopping
from tests.e2e.test_replicas import start_replicas

MESSAGES_APP = pathlib.Path(__file__).with_name("messages_app.py")


def tokens(text: str) -> list[str]:
    """The chunks the fake model streams for `text`: words and spaces."""
    return [part for part in re.split(r"(\s)", text) if part]


@pytest.fixture
def gate(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "gate"
    os.mkfifo(path)
    return path


def start_app_worker(address: str, gate: pathlib.Path) -> Process:
    args = [sys.executable, str(MESSAGES_APP), "--address", address, "--gate", str(gate)]
    return Process(args).start()


@pytest.fixture
def served(tmp_path: pathlib.Path, gate: pathlib.Path) -> Iterator[str]:
    """The address of a `cairn serve` with a messages_app worker connected."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    server = start_server(tmp_path / "cairn.db", port)
    with stopping(server):
        worker = start_app_worker(address, gate)
        with stopping(worker):
            worker.wait_for_line("worker ready")
            yield address


def messages(events: list[RunEvent]) -> list[tuple[AIMessageChunk, dict[str, object]]]:
    return [event.data for event in events if event.mode == "messages"]


async def collect(events: AsyncIterator[RunEvent]) -> list[RunEvent]:
    return [event async for event in events]


async def test_every_token_of_an_entrypoint_and_its_task_arrives_in_order_with_metadata(
    served: str,
) -> None:
    async with Client(served) as client:
        events = await asyncio.wait_for(
            collect(
                client.stream("chat", {"topic": "cats"}, thread_id="t1", stream_mode="messages")
            ),
            60,
        )
    assert events[-1].run is not None and events[-1].run.state is RunState.SUCCEEDED
    assert events[-1].run.output == f"{messages_app.FIRST}|{messages_app.SECOND}"
    pairs = messages(events)
    assert [chunk.content for chunk, _ in pairs] == [
        *tokens(messages_app.FIRST),
        *tokens(messages_app.SECOND),
    ]
    assert all(isinstance(chunk, AIMessageChunk) for chunk, _ in pairs)
    first, second = (
        pairs[: len(tokens(messages_app.FIRST))],
        pairs[len(tokens(messages_app.FIRST)) :],
    )
    # The chunks of one reply share its id, as LangGraph's do.
    assert len({chunk.id for chunk, _ in first}) == 1
    assert len({chunk.id for chunk, _ in second}) == 1
    assert first[0][0].id != second[0][0].id
    run_id = events[0].run_id
    for _, metadata in first:
        assert metadata["langgraph_node"] == "chat"
        assert metadata["langgraph_step"] == 0
        assert metadata["langgraph_triggers"] == ("__start__",)
        assert metadata["langgraph_path"] == ("__pregel_pull", "chat")
        assert metadata["tags"] == []
        assert metadata["thread_id"] == "t1"
        assert metadata["run_id"] == run_id
        assert metadata["ls_provider"] == "genericfakechatmodel"
        assert metadata["ls_model_type"] == "chat"
        assert str(metadata["langgraph_checkpoint_ns"]).startswith("chat:")
    for _, metadata in second:
        assert metadata["langgraph_node"] == "answer"
        assert metadata["langgraph_step"] == 0
        assert metadata["langgraph_triggers"] == ("__pregel_push",)
        assert metadata["tags"] == ["answer"]
        assert str(metadata["checkpoint_ns"]).startswith("answer:")


async def test_a_client_that_reconnects_mid_run_gets_exactly_the_tokens_it_missed(
    served: str, gate: pathlib.Path
) -> None:
    first_tokens = tokens(messages_app.FIRST)
    async with Client(served) as client:
        stream = client.stream(
            "chat", {"topic": "dogs", "gate": True}, thread_id="t2", stream_mode="messages"
        )
        seen: list[RunEvent] = []
        async for event in stream:
            seen.append(event)
            if len(messages(seen)) == 4:
                break
        await stream.aclose()  # the client goes away; the run waits at the gate
        last = seen[-1].event_id
        run_id = seen[-1].run_id
        running = await client.get_run(run_id)
        assert running.state is RunState.RUNNING

        # The worker goes on once the test opens the gate for writing.
        opened = asyncio.to_thread(os.open, gate, os.O_WRONLY)
        os.close(await asyncio.wait_for(opened, 30))

        rest = await asyncio.wait_for(collect(client.join(run_id, after_event_id=last)), 60)
        everything = await asyncio.wait_for(collect(client.join(run_id)), 60)

    assert rest[-1].run is not None and rest[-1].run.state is RunState.SUCCEEDED
    assert [e.event_id for e in rest] == sorted({e.event_id for e in rest})
    assert min(e.event_id for e in rest) == last + 1
    got = [chunk.content for chunk, _ in messages(seen)]
    missed = [chunk.content for chunk, _ in messages(rest)]
    assert got == first_tokens[:4]
    assert missed == first_tokens[4:] + tokens(messages_app.SECOND)
    # Together, exactly the run's log: nothing lost, nothing twice.
    assert [e.event_id for e in seen] + [e.event_id for e in rest] == [
        e.event_id for e in everything
    ]
    assert [c.content for c, _ in messages(everything)] == got + missed


async def test_graph_node_tokens_match_langgraphs_pairs_with_several_modes(served: str) -> None:
    async with Client(served) as client:
        events = await asyncio.wait_for(
            collect(
                client.stream(
                    "chat_graph",
                    {"question": "why?"},
                    thread_id="t3",
                    stream_mode=["messages", "updates"],
                )
            ),
            60,
        )
    chunks = [e for e in events if e.mode in ("messages", "updates")]
    # The node's tokens, then its update, as LangGraph streams them.
    assert [e.mode for e in chunks] == ["messages"] * len(tokens(messages_app.NODE_REPLY)) + [
        "updates"
    ]
    assert chunks[-1].data == {"reply": {"reply": messages_app.NODE_REPLY}}

    def shape(pair: tuple[object, dict[str, object]]) -> tuple[object, ...]:
        chunk, metadata = pair
        keys = ("langgraph_node", "langgraph_step", "langgraph_triggers", "langgraph_path")
        position = tuple(metadata[key] for key in keys)
        return (type(chunk).__name__, getattr(chunk, "content", None), *position)

    langgraph = (
        LangGraphStateGraph(messages_app.Chat)
        .add_node("reply", messages_app.reply)
        .add_edge(LG_START, "reply")
        .compile()
    )
    expected = [
        shape(pair) for pair in langgraph.stream({"question": "why?"}, stream_mode="messages")
    ]
    assert [shape(e.data) for e in chunks[:-1]] == expected


async def test_no_messages_events_when_the_mode_was_not_asked_for(served: str) -> None:
    async with Client(served) as client:
        events = await asyncio.wait_for(
            collect(
                client.stream(
                    "chat", {"topic": "owls"}, thread_id="t4", stream_mode=["updates", "custom"]
                )
            ),
            60,
        )
        assert events[-1].run is not None and events[-1].run.state is RunState.SUCCEEDED
        logged = await asyncio.wait_for(collect(client.join(events[-1].run_id)), 60)
    assert [e.mode for e in events if e.run is None] == ["updates", "updates"]
    assert not [e for e in logged if e.mode == "messages"]


@pytest.mark.timeout(120)
async def test_tokens_of_a_task_relayed_from_another_replica_reach_the_client(
    gate: pathlib.Path,
) -> None:
    with postgres.fresh_schema() as store_url:
        addresses, replicas = start_replicas(store_url, 2)
        worker = start_app_worker(addresses[1], gate)  # to r1 only
        with stopping(worker, *replicas):
            worker.wait_for_line("worker ready")
            async with Client(addresses[0]) as client:  # r0 drives the run
                events = await asyncio.wait_for(
                    collect(
                        client.stream(
                            "chat", {"topic": "relay"}, thread_id="t5", stream_mode="messages"
                        )
                    ),
                    90,
                )
    assert events[-1].run is not None and events[-1].run.state is RunState.SUCCEEDED
    assert [chunk.content for chunk, _ in messages(events)] == [
        *tokens(messages_app.FIRST),
        *tokens(messages_app.SECOND),
    ]
