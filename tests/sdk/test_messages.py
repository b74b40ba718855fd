"""Stream mode "messages" in the Python SDK: chat models inside tasks and
entrypoints stream by themselves, `write_message_chunk` streams for any
other LLM client, and the client decodes LangGraph's `(message_chunk,
metadata)` pairs. (tests/e2e/test_messages_stream.py runs the same with
real processes, graph nodes and a reconnect.)"""

from __future__ import annotations

import re
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import (
    FakeMessagesListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, AIMessageChunk, ToolMessage

from cairn import (
    Client,
    RunEvent,
    _messages,
    entrypoint,
    get_stream_writer,
    task,
    write_message_chunk,
)


def streaming(text: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(content=text)]))


def words(text: str) -> list[str]:
    return [part for part in re.split(r"(\s)", text) if part]


async def events_of(
    client: Client, target: Any, input: Any, thread_id: str, modes: Any
) -> list[RunEvent]:
    return [e async for e in client.stream(target, input, thread_id=thread_id, stream_mode=modes)]


def pairs(events: list[RunEvent]) -> list[tuple[Any, dict[str, Any]]]:
    return [e.data for e in events if e.mode == "messages"]


@task
async def summarize(text: str) -> str:
    reply = await streaming(f"short {text}").ainvoke(text, config={"tags": ["summary"]})
    return str(reply.content)


@entrypoint()
async def async_chat(text: str) -> str:
    spoken = await streaming("let me think").ainvoke(text)
    return f"{spoken.content}: {await summarize(text)}"


async def test_async_bodies_and_their_local_calls_stream_each_token_once_as_their_own(
    client: Client, start_worker: Any
) -> None:
    await start_worker([summarize, async_chat])
    events = await events_of(client, async_chat, "cats", "async", "messages")
    got = [
        (chunk.content, meta["langgraph_node"], tuple(meta["tags"]))
        for chunk, meta in pairs(events)
    ]
    assert got == [(w, "async_chat", ()) for w in words("let me think")] + [
        (w, "summarize", ("summary",)) for w in words("short cats")
    ]


@task
def quiet_reply(text: str) -> str:
    hidden = streaming("not for the client").invoke(text, config={"tags": ["nostream"]})
    whole = FakeMessagesListChatModel(responses=[AIMessage(content="all at once", id="m-1")])
    return f"{hidden.content} / {whole.invoke(text).content}"


@entrypoint()
def quiet(text: str) -> str:
    return str(quiet_reply(text).result())


async def test_a_model_that_cannot_stream_sends_its_whole_message_and_nostream_sends_nothing(
    client: Client, start_worker: Any
) -> None:
    await start_worker([quiet_reply, quiet], local_calls=False)
    events = await events_of(client, quiet, "x", "quiet", "messages")
    assert (
        events[-1].run is not None and events[-1].run.output == "not for the client / all at once"
    )
    [(message, metadata)] = pairs(events)
    assert type(message) is AIMessage
    assert (message.content, message.id) == ("all at once", "m-1")
    assert metadata["langgraph_node"] == "quiet_reply"
    assert metadata["langgraph_triggers"] == ("__pregel_push",)


@entrypoint()
def by_hand(question: str) -> str:
    writer = get_stream_writer()
    writer({"status": "asking"})
    for token in ("Hel", "lo"):
        write_message_chunk(token, id="reply-1", metadata={"ls_provider": "acme"})
    write_message_chunk({"type": "AIMessageChunk", "content": "!", "id": "reply-1"})
    write_message_chunk(ToolMessage(content="42", tool_call_id="call-1", id="tool-1"))
    writer({"status": "done"})
    return "Hello!"


async def test_write_message_chunk_streams_text_dicts_and_messages_beside_custom_data(
    client: Client, start_worker: Any
) -> None:
    await start_worker([by_hand])
    events = await events_of(client, by_hand, "?", "hand", ["messages", "custom"])
    shown = [
        (e.mode, e.data if e.mode == "custom" else (type(e.data[0]).__name__, e.data[0].content))
        for e in events
        if e.run is None
    ]
    assert shown == [
        ("custom", {"status": "asking"}),
        ("messages", ("AIMessageChunk", "Hel")),
        ("messages", ("AIMessageChunk", "lo")),
        ("messages", ("AIMessageChunk", "!")),
        ("messages", ("ToolMessage", "42")),
        ("custom", {"status": "done"}),
    ]
    found = pairs(events)
    assert [m.id for m, _ in found] == ["reply-1", "reply-1", "reply-1", "tool-1"]
    assert found[0][1]["ls_provider"] == "acme"
    assert found[0][1]["langgraph_node"] == "by_hand"
    assert "ls_provider" not in found[2][1]
    assert found[3][0].tool_call_id == "call-1"


async def test_nothing_is_sent_when_the_run_did_not_ask_for_messages(
    client: Client, start_worker: Any
) -> None:
    await start_worker([by_hand, summarize, async_chat])
    for target in (by_hand, async_chat):
        events = await events_of(client, target, "?", f"none-{target.name}", ["custom", "updates"])
        assert events[-1].run is not None and events[-1].run.error is None
        assert not pairs(events)
        assert not pairs([e async for e in client.join(events[-1].run_id)])


def test_without_langchain_core_a_client_gets_the_messages_as_dicts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = {
        "message": {"type": "AIMessageChunk", "content": "hi", "id": "m"},
        "metadata": {
            "langgraph_node": "n",
            "langgraph_path": ["__pregel_push", ["__pregel_pull", "e"], 0, True],
        },
    }
    with_langchain = _messages.pair(data)
    assert isinstance(with_langchain[0], AIMessageChunk)
    monkeypatch.setattr(_messages, "_LANGCHAIN_MISSING", True)
    message, metadata = _messages.pair(data)
    assert message == {"type": "AIMessageChunk", "content": "hi", "id": "m"}
    assert metadata["langgraph_path"] == ("__pregel_push", ("__pregel_pull", "e"), 0, True)


def test_the_wire_form_of_a_chunk_is_its_fields_with_its_type() -> None:
    chunk = AIMessageChunk(
        content="hel",
        id="m",
        usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
    )
    data = _messages.chunk_data(chunk, {"langgraph_node": "n", "langgraph_triggers": ("x",)})
    assert data["message"]["type"] == "AIMessageChunk"
    assert data["message"]["content"] == "hel"
    assert data["message"]["usage_metadata"]["total_tokens"] == 3
    assert "name" not in data["message"]  # unset fields stay out
    assert data["metadata"] == {"langgraph_node": "n", "langgraph_triggers": ["x"]}
    message, _ = _messages.pair(data)
    assert message == chunk


def test_write_message_chunk_outside_a_task_says_where_it_works() -> None:
    with pytest.raises(RuntimeError, match="inside a task or an entrypoint"):
        write_message_chunk("hi")


def test_a_chunk_the_typescript_sdk_wrote_reads_as_an_ai_message_chunk() -> None:
    # As the TypeScript SDK writes an @langchain/core AIMessageChunk (toDict's fields).
    data = {
        "message": {
            "content": "hi",
            "id": "run-1",
            "tool_call_chunks": [
                {"name": "f", "args": "{", "id": "c1", "index": 0, "type": "tool_call_chunk"}
            ],
            "usage_metadata": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
            "additional_kwargs": {},
            "response_metadata": {},
            "tool_calls": [{"name": "f", "args": {}, "id": "c1", "type": "tool_call"}],
            "invalid_tool_calls": [],
            "type": "AIMessageChunk",
        },
        "metadata": {"langgraph_node": "chat", "tags": []},
    }
    message, metadata = _messages.pair(data)
    assert isinstance(message, AIMessageChunk)
    assert (message.content, message.id) == ("hi", "run-1")
    assert message.tool_call_chunks[0]["name"] == "f"
    assert message.usage_metadata is not None and message.usage_metadata["total_tokens"] == 3
    assert metadata == {"langgraph_node": "chat", "tags": []}
