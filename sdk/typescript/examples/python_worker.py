"""The Python half of the cross-language example (see sdk/typescript/README.md):
serves the task `summarize` (which the TypeScript entrypoint `ts_essay` calls)
and the entrypoint `py_essay` (which calls the TypeScript task `shout`).

    .venv/bin/python sdk/typescript/examples/python_worker.py [127.0.0.1:50051]
"""

from __future__ import annotations

import sys

from cairn import Worker, entrypoint, remote_task, task


@task
def summarize(text: str) -> str:
    return f"{text[:40]}... (summarized in Python)"


shout = remote_task("shout")  # served by the TypeScript worker


@entrypoint()
def py_essay(topic: str) -> dict:
    return {"title": shout(topic).result(), "body": summarize(f"An essay about {topic}").result()}


if __name__ == "__main__":
    address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
    print("python worker ready", flush=True)
    Worker(address, functions=[summarize, py_essay]).run_sync()
