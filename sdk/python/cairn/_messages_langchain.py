"""The langchain-core side of stream mode "messages" (see cairn/_messages.py):
a callback handler that sends the tokens of the chat models a body calls.

langchain-core hands every runnable the config in its child-config context
variable; a chat model called with no callbacks of its own inherits the
handler set there. The handler counts as a streaming one to langchain-core
(`_StreamingCallbackHandler`), so that `model.invoke(...)` streams through
the model's `_stream` and the handler sees each chunk, as in LangGraph.
Imported only when a run streams messages: langchain-core is optional.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, GenerationChunk, LLMResult
from langchain_core.runnables.config import RunnableConfig, var_child_runnable_config
from langchain_core.tracers._streaming import _StreamingCallbackHandler

from cairn._messages import chunk_data
from cairn.v1 import run_pb2

if TYPE_CHECKING:
    from cairn._context import Execution

T = TypeVar("T")

POSITION_KEYS = frozenset(
    {
        "thread_id",
        "run_id",
        "langgraph_node",
        "langgraph_step",
        "langgraph_triggers",
        "langgraph_path",
        "langgraph_checkpoint_ns",
        "checkpoint_ns",
    }
)
"""The metadata keys that say where a body runs: an enclosing execution's
are not a local call's."""

NOSTREAM_TAGS = frozenset({"nostream", "langsmith:nostream"})
"""A chat model called with one of these tags is not streamed (LangGraph's
TAG_NOSTREAM; langgraphjs also takes the second)."""


def attach(execution: Execution, metadata: dict[str, Any]) -> contextvars.Token[Any]:
    """Set the child config of the calling context so that chat models
    stream to `execution`. The callbacks, tags and metadata already there (a
    body run inside a runnable) are kept, except what an enclosing
    execution's attach put there: a local call's body starts in its caller's
    context, and its tokens are its own."""
    handler = ChatModelTokens(execution, metadata)
    config: RunnableConfig = dict(var_child_runnable_config.get() or {})  # type: ignore[assignment]
    callbacks = config.get("callbacks")
    if callbacks is None:
        config["callbacks"] = [handler]
    elif isinstance(callbacks, list):
        kept = [c for c in callbacks if not isinstance(c, ChatModelTokens)]
        config["callbacks"] = [*kept, handler]
    else:  # a callback manager
        manager = callbacks.copy()
        for other in [h for h in manager.handlers if isinstance(h, ChatModelTokens)]:
            manager.remove_handler(other)
        manager.add_handler(handler, inherit=True)
        config["callbacks"] = manager
    inherited = config.get("metadata", {})
    config["metadata"] = {
        **{key: value for key, value in inherited.items() if key not in POSITION_KEYS},
        **metadata,
    }
    return var_child_runnable_config.set(config)


class ChatModelTokens(BaseCallbackHandler, _StreamingCallbackHandler[Any]):
    """Sends each chunk a chat model streams, with the metadata LangGraph
    gives it; a model that did not stream sends its whole message when it
    ends."""

    run_inline = True
    """Called in the model's own thread or task, so that chunks go in order."""

    def __init__(self, execution: Execution, metadata: dict[str, Any]) -> None:
        self._execution = execution
        self._metadata = metadata
        self._runs: dict[uuid.UUID, dict[str, Any]] = {}
        self._seen: set[str] = set()

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if tags and NOSTREAM_TAGS.intersection(tags):
            return
        # The model's own keys (ls_*, and metadata given to this call) over
        # the task's, which a call's own metadata would otherwise replace.
        merged = {**self._metadata, **(metadata or {})}
        merged["tags"] = [tag for tag in tags or () if not tag.startswith("seq:step")]
        self._runs[run_id] = merged

    def on_llm_new_token(
        self,
        token: str | list[str | dict[str, Any]],
        *,
        chunk: GenerationChunk | ChatGenerationChunk | None = None,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        metadata = self._runs.get(run_id)
        if metadata is not None and isinstance(chunk, ChatGenerationChunk):
            self._send(chunk.message, metadata)

    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        metadata = self._runs.pop(run_id, None)
        if metadata is None or not response.generations or not response.generations[0]:
            return
        generation = response.generations[0][0]
        # A streamed reply went out chunk by chunk already (same id).
        if isinstance(generation, ChatGeneration) and generation.message.id not in self._seen:
            self._send(generation.message, metadata)

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._runs.pop(run_id, None)

    def _send(self, message: BaseMessage, metadata: dict[str, Any]) -> None:
        if message.id is None:
            message.id = str(uuid.uuid4())
        self._seen.add(message.id)
        self._execution.write(chunk_data(message, metadata), run_pb2.STREAM_MODE_MESSAGES)

    # _StreamingCallbackHandler: outputs pass as they are.

    def tap_output_aiter(self, run_id: uuid.UUID, output: AsyncIterator[T]) -> AsyncIterator[T]:
        return output

    def tap_output_iter(self, run_id: uuid.UUID, output: Iterator[T]) -> Iterator[T]:
        return output
