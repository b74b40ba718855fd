"""Stream mode "messages": LLM tokens from inside tasks, entrypoints and
graph nodes, as LangGraph's `(message_chunk, metadata)` pairs.

On the worker. An assignment whose run streams messages (its
`stream_messages`) runs its body with a langchain-core callback handler
installed through langchain-core's child-config context variable (see
cairn/_messages_langchain.py), when langchain-core is installed: every chat
model the body calls streams its tokens, with no change to the body. Any
other LLM client writes its chunks with `write_message_chunk`. Nothing is
sent when the run did not ask for the mode.

On the wire. Each chunk is a TaskStreamChunk of STREAM_MODE_MESSAGES whose
data is `{"message": <message>, "metadata": {...}}`. The message is the flat
JSON form LangGraph's server streams: the message's fields with its "type"
("AIMessageChunk" for a token, "ai", "tool", ...), as pydantic's
`model_dump` of a langchain-core message gives them, and as the TypeScript
SDK writes and reads them too. The metadata has LangGraph's keys:
`langgraph_node` (the node, task or entrypoint name), `tags`, the chat
model's `ls_*` keys, `thread_id`, `run_id`, `langgraph_checkpoint_ns`; the
service adds `langgraph_step`, `langgraph_triggers` and `langgraph_path`.

On the client. `pair` turns the data back into `(message_chunk, metadata)`:
the message as a langchain-core message (AIMessageChunk for a token) when
langchain-core is installed, else as its dict.
"""

from __future__ import annotations

import contextvars
import json
from typing import TYPE_CHECKING, Any

from cairn.v1 import run_pb2, worker_service_pb2

if TYPE_CHECKING:
    from cairn._context import Execution

pb = worker_service_pb2

_LANGCHAIN_MISSING = False
"""langchain-core failed to import once: it is not tried again."""


def write_message_chunk(
    chunk: Any, *, id: str | None = None, metadata: dict[str, Any] | None = None
) -> None:
    """Stream an LLM token (or a whole message) to the clients that asked
    for stream mode "messages", from inside a task, an entrypoint or a graph
    node. For LLM clients other than langchain-core chat models, which
    stream by themselves. Does nothing when the run did not ask for the mode.

    `chunk` is the text of a token, a langchain-core message (or chunk), or
    a message as a dict of its fields ({"type": "AIMessageChunk", "content":
    ...}). Chunks that share an `id` are parts of one message, as with
    LangGraph: give each reply its own. Without one, a text chunk takes the
    id of the current task (attempt included). `metadata` is added to the
    pair's metadata (the node name, tags, ... are there already).

        @task
        def answer(question: str) -> str:
            parts = []
            for event in openai.chat.completions.create(..., stream=True):
                text = event.choices[0].delta.content or ""
                write_message_chunk(text, id=event.id, metadata={"ls_provider": "openai"})
                parts.append(text)
            return "".join(parts)
    """
    from cairn._context import current  # _context imports this module

    execution = current()
    if not execution.assignment.stream_messages:
        return
    message = _message_of(chunk)
    if id is not None:
        message["id"] = id
    elif message.get("id") is None:
        message["id"] = f"run-{execution.task_id}-{execution.assignment.attempt}"
    meta = {**base_metadata(execution), **jsonable(metadata or {})}
    meta.setdefault("tags", [])
    execution.write({"message": message, "metadata": meta}, run_pb2.STREAM_MODE_MESSAGES)


def attach(execution: Execution) -> contextvars.Token[Any] | None:
    """In the calling context: the chat models `execution`'s body calls
    stream their tokens, if its run streams messages and langchain-core is
    installed. The token resets it (a sync body's context is its own and
    needs no reset)."""
    global _LANGCHAIN_MISSING
    if not execution.assignment.stream_messages or _LANGCHAIN_MISSING:
        return None
    try:
        from cairn import _messages_langchain
    except ImportError:
        _LANGCHAIN_MISSING = True
        return None
    return _messages_langchain.attach(execution, base_metadata(execution))


def detach(token: contextvars.Token[Any] | None) -> None:
    """Undo `attach` in the context it was called in."""
    if token is not None:
        token.var.reset(token)


def base_metadata(execution: Execution) -> dict[str, Any]:
    """The metadata every chunk of `execution` carries (before the chat
    model's own keys)."""
    assignment = execution.assignment
    node = execution.node
    namespace = "|".join([*assignment.path, f"{node}:{assignment.task_id}"])
    metadata: dict[str, Any] = {
        "thread_id": assignment.thread_id,
        "run_id": assignment.run_id,
        "langgraph_node": node,
        "langgraph_checkpoint_ns": namespace,
        "checkpoint_ns": namespace,
    }
    if assignment.kind == pb.TASK_KIND_ENTRYPOINT:
        # The service knows where tasks and nodes stand; an entrypoint is
        # always what the run's input started.
        metadata["langgraph_triggers"] = ["__start__"]
        metadata["langgraph_path"] = ["__pregel_pull", node]
    return metadata


def chunk_data(message: Any, metadata: dict[str, Any]) -> dict[str, Any]:
    """The data of one messages chunk: a langchain-core message and the
    pair's metadata, as JSON."""
    return {"message": _message_of(message), "metadata": jsonable(metadata)}


def _message_of(chunk: Any) -> dict[str, Any]:
    """A chunk as the message JSON of the wire (see the module docstring)."""
    if isinstance(chunk, str):
        return {"type": "AIMessageChunk", "content": chunk}
    if isinstance(chunk, dict):
        message: dict[str, Any] = jsonable(chunk)
        message.setdefault("type", "AIMessageChunk")
        return message
    dump = getattr(chunk, "model_dump", None)
    if dump is None or not isinstance(getattr(chunk, "type", None), str):
        raise TypeError(
            f"a message chunk is a str, a dict or a langchain-core message, not {chunk!r}"
        )
    try:
        fields = dump(mode="json")
    except Exception:  # a field pydantic cannot put as JSON: its text instead
        fields = jsonable(dump())
    return {key: value for key, value in fields.items() if value is not None}


def jsonable(value: Any) -> Any:
    """`value` as JSON data: tuples as lists, anything else JSON lacks as its
    text."""
    return json.loads(json.dumps(value, default=str))


# --- the client's side ------------------------------------------------------------------

_PATH_KEYS = ("langgraph_triggers", "langgraph_path")


def pair(data: Any) -> tuple[Any, dict[str, Any]]:
    """The `(message_chunk, metadata)` pair of a messages chunk's data, as
    LangGraph's `stream(stream_mode="messages")` yields it: the message as a
    langchain-core message when langchain-core is installed (else its dict),
    `langgraph_triggers` and `langgraph_path` as tuples."""
    if not isinstance(data, dict):
        return data, {}
    message = data.get("message")
    metadata = data.get("metadata")
    metadata = dict(metadata) if isinstance(metadata, dict) else {}
    for key in _PATH_KEYS:
        if isinstance(metadata.get(key), list):
            metadata[key] = _tuples(metadata[key])
    return _langchain_message(message), metadata


def _tuples(value: Any) -> Any:
    return tuple(_tuples(item) for item in value) if isinstance(value, list) else value


def _langchain_message(message: Any) -> Any:
    """`message` as a langchain-core message, or as it came when
    langchain-core is missing or cannot read it."""
    global _LANGCHAIN_MISSING
    if _LANGCHAIN_MISSING or not isinstance(message, dict):
        return message
    try:
        from langchain_core.messages import messages_from_dict
    except ImportError:
        _LANGCHAIN_MISSING = True
        return message
    try:
        return messages_from_dict([{"type": message.get("type"), "data": message}])[0]
    except (ValueError, TypeError):  # a type or fields langchain-core does not know
        return message
