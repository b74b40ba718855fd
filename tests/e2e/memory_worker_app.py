"""A Cairn worker process for test_memory_python.py: entrypoints that write
memories and read them back, with semantic search (the deterministic fake
embedding of tests/sdk/store_embeddings.py; PYTHONPATH holds the repo).

    python tests/e2e/memory_worker_app.py --address 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from cairn import Store, Worker, entrypoint, get_store, task
from tests.sdk.store_embeddings import DIMS, embed_texts


@task
def save_memory(memory: dict[str, str]) -> None:
    namespace = ("users", memory["user"], "memories")
    get_store().put(namespace, memory["key"], {"text": memory["text"]})


@entrypoint()
def remember(memories: list[dict[str, str]], *, store: Store) -> dict[str, Any]:
    for memory in memories:
        save_memory(memory).result()
    store.put(("users", memories[0]["user"]), "profile", {"memories": len(memories)})
    return {"pid": os.getpid()}


@entrypoint()
async def recall(question: dict[str, str], *, store: Store) -> dict[str, Any]:
    user = question["user"]
    found = await store.asearch(("users", user, "memories"), query=question["query"], limit=3)
    profile = await store.aget(("users", user), "profile")
    return {
        "pid": os.getpid(),
        "memories": [item.value["text"] for item in found],
        "scored": all(item.score is not None for item in found),
        "profile": profile.value if profile else None,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    args = parser.parse_args()
    worker = Worker(
        args.address,
        functions=[save_memory, remember, recall],
        store_index={"embed": embed_texts, "dims": DIMS, "fields": ["text"]},
    )
    runner = asyncio.ensure_future(worker.run())
    await worker.connected.wait()
    print("worker ready", worker.worker_id, os.getpid(), flush=True)
    await runner


if __name__ == "__main__":
    asyncio.run(main())
