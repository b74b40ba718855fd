"""Latency of the memory store (StoreService) through the Python SDK's
`client.store`, on a real `cairn serve`, with LangGraph's InMemoryStore in
this process as the reference for the same operations.

    .venv/bin/python bench/memory.py [--items 2000] [--dims 256] [--calls 200]
        [--store sqlite|postgres] [--pg-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--json bench/results/memory.json]

Starts `cairn serve` on a fresh store (a SQLite file, or a new schema at
--pg-url dropped at the end) as a separate process on 127.0.0.1. Puts
--items items of about 200 bytes in 10 namespaces, each with one vector of
--dims floats on its "text" field (a deterministic pseudo-random embedding
computed here, as a caller's model would), then measures --calls of each:

- put: one new item with its vector;
- get: one item by key;
- search (filter): a namespace prefix and a JSON filter, 10 results;
- search (query): the 10 items nearest a query vector, over all items
  (SQLite compares every vector exactly, Postgres with pgvector's `<=>`);
- search (query + filter): the same within the items the filter keeps.

Prints p50, p99 and mean per call as a markdown table and writes them as
JSON. The embedding function's own time is in every figure of both stores
(about the same for both); the reference has no network or disk.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import pathlib
import platform
import random
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langgraph.store.memory import InMemoryStore

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from cairn_runner import fresh_store
from saver import cairn_serve, figures

from cairn import Client

KINDS = ("note", "fact", "preference", "event")


def embed(dims: int) -> Callable[[Sequence[str]], list[list[float]]]:
    """A deterministic embedding: the same text, the same unit vector."""

    def vectors(texts: Sequence[str]) -> list[list[float]]:
        out = []
        for text in texts:
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
            rng = random.Random(seed)
            vector = [rng.gauss(0.0, 1.0) for _ in range(dims)]
            norm = sum(x * x for x in vector) ** 0.5
            out.append([x / norm for x in vector])
        return out

    return vectors


def item(i: int) -> tuple[tuple[str, ...], str, dict[str, Any]]:
    text = f"memory {i}: the user said something about topic {i % 97} " + "x" * 100
    return ("bench", f"user-{i % 10}"), f"key-{i}", {"text": text, "kind": KINDS[i % 4], "n": i}


async def timed(calls: int, call: Callable[[int], Awaitable[Any]]) -> list[float]:
    seconds = []
    for i in range(calls):
        start = time.perf_counter()
        await call(i)
        seconds.append(time.perf_counter() - start)
    return seconds


async def measure(store: Any, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """The figures of one store (a Cairn `client.store` or an InMemoryStore,
    both with LangGraph's async method names)."""
    for i in range(args.items):
        await store.aput(*item(i))
    fresh = args.items
    results: dict[str, list[float]] = {}

    async def put(i: int) -> None:
        await store.aput(*item(fresh + i))

    async def get(i: int) -> None:
        namespace, key, _ = item(i * 7 % args.items)
        assert await store.aget(namespace, key) is not None

    async def search_filter(i: int) -> None:
        found = await store.asearch(
            ("bench", f"user-{i % 10}"), filter={"kind": KINDS[i % 4]}, limit=10
        )
        assert len(found) == 10

    async def search_query(i: int) -> None:
        found = await store.asearch(("bench",), query=f"topic {i % 97}", limit=10)
        assert len(found) == 10 and found[0].score is not None

    async def search_both(i: int) -> None:
        found = await store.asearch(
            ("bench",), query=f"topic {i % 97}", filter={"kind": KINDS[i % 4]}, limit=10
        )
        assert len(found) == 10 and all(f.value["kind"] == KINDS[i % 4] for f in found)

    for name, call in (
        ("put", put),
        ("get", get),
        ("search (filter)", search_filter),
        ("search (query)", search_query),
        ("search (query + filter)", search_both),
    ):
        await timed(min(10, args.calls), call)  # warm-up
        results[name] = await timed(args.calls, call)
    return {name: figures(seconds) for name, seconds in results.items()}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    index = {"embed": embed(args.dims), "dims": args.dims, "fields": ["text"]}
    report: dict[str, Any] = {
        "items": args.items,
        "dims": args.dims,
        "calls": args.calls,
        "store": args.store,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    async with fresh_store(args) as (url, versions):
        report["versions"] = versions
        with cairn_serve(url) as address:
            client = Client(address, store_index=index)
            try:
                report["cairn"] = await measure(client.store, args)
            finally:
                await client.close()
    report["langgraph_in_memory"] = await measure(InMemoryStore(index=index), args)  # type: ignore[arg-type]
    return report


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['items']} items, {report['dims']} dims, store {report['store']}",
        "",
        "| operation | Cairn p50 ms | Cairn p99 ms | InMemoryStore p50 ms |",
        "| --- | --- | --- | --- |",
    ]
    for name, cairn in report["cairn"].items():
        reference = report["langgraph_in_memory"][name]
        figures_ms = (cairn["p50_ms"], cairn["p99_ms"], reference["p50_ms"])
        lines.append(f"| {name} | " + " | ".join(f"{ms:.2f}" for ms in figures_ms) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    report = asyncio.run(run(args))
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
