"""Worker-side metrics (cairn/_metrics.py): a worker asked for them serves
/metrics, and after its runs the counts say exactly what it executed."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cairn import Client, RunFailedError, entrypoint, task
from tests.conftest import StartWorker

MAX_CONCURRENCY = 4
HOLDING = asyncio.Event()
RELEASE = asyncio.Event()


@task
async def double(x: int) -> int:
    return 2 * x


@task
async def explode(x: int) -> int:
    raise ValueError(f"cannot take {x}")  # a programming error: not retried


@entrypoint()
async def add_up(n: int) -> int:
    return sum([await double(i) for i in range(n)])


@entrypoint()
async def breaks(n: int) -> int:
    return await explode(n)


@entrypoint()
async def holds(x: str) -> str:
    HOLDING.set()
    await RELEASE.wait()
    return x


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(address: str) -> Samples:
    def get() -> str:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
            body: bytes = response.read()
            return body.decode()

    return parse(await asyncio.to_thread(get))


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples.get((metric, frozenset(labels.items())), 0.0)


async def test_a_worker_serves_exact_counts_of_what_it_ran(
    client: Client, start_worker: StartWorker
) -> None:
    HOLDING.clear()
    RELEASE.clear()
    worker = await start_worker(
        [add_up, breaks, holds, double, explode],
        metrics_address="127.0.0.1:0",
        max_concurrency=MAX_CONCURRENCY,
    )
    address = worker.metrics_address
    assert address is not None and not address.endswith(":0")

    assert (await client.invoke("add_up", 3, thread_id="t-sum")).output == 6
    with pytest.raises(RunFailedError):
        await client.invoke("breaks", 7, thread_id="t-breaks")

    held = asyncio.ensure_future(client.invoke("holds", "x", thread_id="t-holds"))
    await asyncio.wait_for(HOLDING.wait(), 10)
    during = await scrape(address)
    RELEASE.set()
    assert (await asyncio.wait_for(held, 10)).output == "x"
    after = await scrape(address)

    assert value(during, "cairn_worker_slots_in_use", kind="entrypoint") == 1
    assert value(during, "cairn_worker_slots_in_use", kind="task") == 0
    assert value(after, "cairn_worker_slots_in_use", kind="entrypoint") == 0
    assert value(after, "cairn_worker_slots", kind="task") == MAX_CONCURRENCY
    assert value(after, "cairn_worker_slots", kind="entrypoint") == 256

    total = "cairn_worker_tasks_total"
    counted = {
        (dict(labels)["name"], dict(labels)["kind"], dict(labels)["outcome"]): count
        for (name, labels), count in after.items()
        if name == total
    }
    assert counted == {
        ("double", "task", "completed"): 3,
        ("add_up", "entrypoint", "completed"): 1,
        ("explode", "task", "failed"): 1,
        ("breaks", "entrypoint", "failed"): 1,
        ("holds", "entrypoint", "completed"): 1,
    }
    duration = "cairn_worker_task_duration_seconds_count"
    assert value(after, duration, name="double", kind="task") == 3
    assert value(after, duration, name="explode", kind="task") == 1
    assert value(after, duration, name="holds", kind="entrypoint") == 1


async def test_a_worker_records_in_the_applications_registry(
    client: Client, start_worker: StartWorker
) -> None:
    registry = CollectorRegistry()
    worker = await start_worker([add_up, double], metrics_registry=registry)
    assert worker.metrics_address is None  # the application serves its registry
    assert (await client.invoke("add_up", 2, thread_id="t-app")).output == 2
    samples = parse(generate_latest(registry).decode())
    total = "cairn_worker_tasks_total"
    assert value(samples, total, name="double", kind="task", outcome="completed") == 2
    assert value(samples, total, name="add_up", kind="entrypoint", outcome="completed") == 1


def test_without_metrics_a_worker_needs_no_prometheus_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from cairn import Worker

    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
    Worker("127.0.0.1:1", functions=[double])
    with pytest.raises(ImportError, match="pip install prometheus-client"):
        Worker("127.0.0.1:1", functions=[double], metrics_address="127.0.0.1:0")
