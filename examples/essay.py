"""The essay-review example from LangGraph's functional API docs, on Cairn.

    python examples/essay.py worker          # serves the task and the entrypoint
    python examples/essay.py run cats        # starts a run, answers the interrupt

Needs `cairn serve` on 127.0.0.1:50051.
"""

from __future__ import annotations

import sys
import time

from cairn import Command, SyncClient, Worker, entrypoint, interrupt, task


@task
def write_essay(topic: str) -> str:
    time.sleep(1)  # a slow LLM call
    return f"An essay about topic: {topic}"


@entrypoint()
def workflow(topic: str) -> dict:
    essay = write_essay(topic).result()
    is_approved = interrupt({"essay": essay, "action": "Please approve/reject the essay"})
    return {"essay": essay, "is_approved": is_approved}


def main() -> None:
    if sys.argv[1:2] == ["worker"]:
        Worker("127.0.0.1:50051", functions=[write_essay, workflow]).run_sync()
        return
    topic = sys.argv[2] if len(sys.argv) > 2 else "cats"
    with SyncClient("127.0.0.1:50051") as client:
        run = client.invoke(workflow, topic, thread_id=f"essay-{topic}", durability="sync")
        print("interrupted:", run.interrupts[0].value)
        run = client.invoke(workflow, Command(resume=True), thread_id=f"essay-{topic}")
        print("output:", run.output)


if __name__ == "__main__":
    main()
