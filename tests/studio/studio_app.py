"""The worker process that Cairn Studio's browser tests and bench/studio.py serve.

- `approval`: an entrypoint that drafts a reply (a task), asks for approval
  with `interrupt({"question": ..., "draft": ...})`, then sends the reply
  built from the answer (a second task).
- `live`: an entrypoint whose run stays live while a test watches it: it
  writes custom stream events, and between them waits for its gate, a file
  named after the job in the directory $CAIRN_STUDIO_GATES.
- `nightly_digest`: an entrypoint only a worker started with --retired
  serves (the test stops that worker, so a run of it waits for a worker).
- `snooze`: an entrypoint that sleeps a day (a durable timer), so its run
  waits on a timer.
- `triage`: a StateGraph with a conditional edge (classify -> refund |
  answer) and a breakpoint before `review`, so a thread stops mid-graph with
  `next == ("review",)`.

    python tests/studio/studio_app.py --address 127.0.0.1:50051 [--retired]
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import os
import pathlib
import time
from datetime import timedelta
from typing import Annotated, Any, TypedDict

from cairn import (
    END,
    START,
    StateGraph,
    Worker,
    entrypoint,
    get_stream_writer,
    interrupt,
    sleep,
    task,
)

GATE_TIMEOUT = 120.0


@task
def draft_reply(topic: str) -> str:
    return f"Thanks for writing about {topic}. We will look into it today."


@task
def send_reply(draft: str, answer: Any) -> str:
    if isinstance(answer, dict) and answer.get("approved"):
        return f"{draft} {answer.get('note', '')}".strip()
    return f"(not sent: {answer!r})"


@entrypoint()
def approval(request: dict[str, Any]) -> dict[str, Any]:
    draft = draft_reply(request["topic"]).result()
    answer = interrupt({"question": "Send this reply?", "draft": draft})
    sent = send_reply(draft, answer).result()
    return {"draft": draft, "answer": answer, "sent": sent}


@task
def wait_for_gate(name: str) -> str:
    """Returns once the file `name` exists in $CAIRN_STUDIO_GATES (polled for
    at most two minutes): this worker's way of being held, not a test's."""
    gate = pathlib.Path(os.environ["CAIRN_STUDIO_GATES"]) / name
    deadline = time.monotonic() + GATE_TIMEOUT
    while not gate.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the gate {gate} was never opened")
        time.sleep(0.02)
    return f"gate {name} opened"


@entrypoint()
def live(job: dict[str, Any]) -> dict[str, Any]:
    """`job["before"]` custom events, then the gate `job["gate"]`, then
    `job["after"]` more."""
    writer = get_stream_writer()
    before, after = int(job["before"]), int(job["after"])
    for index in range(before):
        writer({"phase": "before", "index": index, "of": before})
    opened = wait_for_gate(job["gate"]).result()
    for index in range(after):
        writer({"phase": "after", "index": index, "of": after})
    return {"gate": opened, "events": before + after}


class Ticket(TypedDict):
    text: str
    kind: str
    notes: Annotated[list[str], operator.add]
    reply: str


def classify(state: Ticket) -> dict[str, Any]:
    kind = "refund" if "refund" in state["text"].lower() else "question"
    return {"kind": kind, "notes": [f"classified as {kind}"]}


def route(state: Ticket) -> str:
    return "refund" if state["kind"] == "refund" else "answer"


def refund(state: Ticket) -> dict[str, Any]:
    return {"notes": ["refund drafted"], "reply": "Your refund is on its way."}


def answer(state: Ticket) -> dict[str, Any]:
    return {"notes": ["answer drafted"], "reply": f"About '{state['text']}': here is how."}


def review(state: Ticket) -> dict[str, Any]:
    return {"notes": ["reviewed"], "reply": state["reply"] + " (reviewed)"}


triage = (
    StateGraph(Ticket)
    .add_node("classify", classify)
    .add_node("refund", refund)
    .add_node("answer", answer)
    .add_node("review", review)
    .add_edge(START, "classify")
    .add_conditional_edges("classify", route, {"refund": "refund", "answer": "answer"})
    .add_edge("refund", "review")
    .add_edge("answer", "review")
    .add_edge("review", END)
    .compile(name="triage", interrupt_before=["review"])
)


@entrypoint()
def nightly_digest(day: str) -> str:
    return f"digest of {day}"


@entrypoint()
def snooze(reminder: str) -> str:
    sleep(timedelta(days=1))
    return f"reminded: {reminder}"


FUNCTIONS: list[Any] = [draft_reply, send_reply, approval, wait_for_gate, live, triage, snooze]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--retired", action="store_true", help="serve only nightly_digest")
    args = parser.parse_args()
    worker = Worker(args.address, functions=[nightly_digest] if args.retired else FUNCTIONS)
    runner = asyncio.ensure_future(worker.run())
    await worker.connected.wait()
    print("worker ready", worker.worker_id, os.getpid(), flush=True)
    await runner


if __name__ == "__main__":
    asyncio.run(main())
