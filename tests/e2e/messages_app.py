"""A worker process for the tests of stream mode "messages": its entrypoint,
task and graph node call langchain-core's fake streaming chat model with a
plain `model.invoke(...)`, as an application calls a real one.

`chat({"topic": ..., "gate": true})` stops between its two replies until
the test opens the FIFO given as --gate for writing, so that a client can
disconnect while the run is in the middle of its tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from cairn import START, StateGraph, Worker, entrypoint, task

FIRST = "one two three four five"
SECOND = "six seven eight"
NODE_REPLY = "a graph node speaks"

GATE: str = ""


def model(text: str) -> GenericFakeChatModel:
    """A chat model that streams `text` word by word (words and spaces)."""
    return GenericFakeChatModel(messages=iter([AIMessage(content=text)]))


@task
def answer(topic: str) -> str:
    reply = model(SECOND).invoke(f"answer {topic}", config={"tags": ["answer"]})
    return str(reply.content)


@entrypoint()
def chat(request: dict[str, Any]) -> str:
    first = model(FIRST).invoke(request["topic"])
    if request.get("gate"):
        # Blocks until the test opens the FIFO for writing.
        with open(GATE, "rb"):
            pass
    second = answer(request["topic"]).result()
    return f"{first.content}|{second}"


class Chat(TypedDict):
    question: str
    reply: str


def reply(state: Chat) -> dict[str, str]:
    message = model(NODE_REPLY).invoke(state["question"])
    return {"reply": str(message.content)}


chat_graph = (
    StateGraph(Chat).add_node("reply", reply).add_edge(START, "reply").compile(name="chat_graph")
)


async def main() -> None:
    global GATE
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--gate", required=True)
    args = parser.parse_args()
    GATE = args.gate
    worker = Worker(args.address, functions=[answer, chat, chat_graph])
    runner = asyncio.ensure_future(worker.run())
    await worker.connected.wait()
    print("worker ready", worker.worker_id, os.getpid(), flush=True)
    await runner


if __name__ == "__main__":
    asyncio.run(main())
