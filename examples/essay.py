"""The essay-review example from LangGraph's functional API docs, on Cairn.

    python examples/essay.py worker          # serves the task and the entrypoint
    python examples/essay.py run cats        # starts a run, answers the interrupt

Needs `cairn serve`; its address is --address HOST:PORT, else the CAIRN_ADDRESS
environment variable, else 127.0.0.1:50051:

    python examples/essay.py --address 10.0.0.1:50051 worker
"""

from __future__ import annotations

import argparse
import os
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
    parser = argparse.ArgumentParser(description="LangGraph's essay example on Cairn")
    parser.add_argument(
        "--address",
        default=os.environ.get("CAIRN_ADDRESS", "127.0.0.1:50051"),
        help="the Cairn server (default: $CAIRN_ADDRESS, else 127.0.0.1:50051)",
    )
    parser.add_argument("command", choices=["worker", "run"])
    parser.add_argument("topic", nargs="?", default="cats")
    args = parser.parse_args()
    if args.command == "worker":
        Worker(args.address, functions=[write_essay, workflow]).run_sync()
        return
    topic = args.topic
    with SyncClient(args.address) as client:
        run = client.invoke(workflow, topic, thread_id=f"essay-{topic}", durability="sync")
        print("interrupted:", run.interrupts[0].value)
        run = client.invoke(workflow, Command(resume=True), thread_id=f"essay-{topic}")
        print("output:", run.output)


if __name__ == "__main__":
    main()
