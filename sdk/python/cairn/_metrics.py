"""Worker-side Prometheus metrics, when the application asks for them.

    # served on their own port, at /metrics
    worker = Worker(address, functions=[...], metrics_address="127.0.0.1:9465")

    # or in a registry the application already exposes
    registry = prometheus_client.CollectorRegistry()
    worker = Worker(address, functions=[...], metrics_registry=registry)

The metrics (labels are the registered names and kinds, never ids):

    cairn_worker_tasks_total{name,kind,outcome}   executions that ended, by outcome:
        completed, failed, interrupted, sleeping (an entrypoint sleeps),
        suspended (an awaited call is interrupted), cancelled (withdrawn, or
        the stream dropped), abandoned
    cairn_worker_task_duration_seconds{name,kind} histogram of execution time
    cairn_worker_slots_in_use{kind}               executions holding a slot now
    cairn_worker_slots{kind}                      slots (max_concurrency, max_entrypoints)

`kind` is `task` (tasks and graph nodes) or `entrypoint`. A task an
entrypoint runs itself (a local call) is counted as a task but holds no slot,
as in the worker.

prometheus-client is optional: without it a worker runs as ever, and asking
for metrics raises an ImportError that says what to install.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Awaitable, Iterator
from typing import TYPE_CHECKING, Any

from cairn.v1 import worker_service_pb2

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

Assignment = worker_service_pb2.TaskAssignment

TASK, ENTRYPOINT = "task", "entrypoint"

# Tasks of agents last from milliseconds (a tool) to many minutes (a model).
DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    float("inf"),
)


def kind_of(assignment: Assignment) -> str:
    return ENTRYPOINT if assignment.kind == worker_service_pb2.TASK_KIND_ENTRYPOINT else TASK


class NoMetrics:
    """What a worker records when nobody asked for metrics: nothing."""

    address: str | None = None

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    @contextlib.contextmanager
    def in_slot(self, assignment: Assignment) -> Iterator[None]:
        yield

    async def timed(self, assignment: Assignment, body: Awaitable[str]) -> None:
        await body


class _Instruments:
    """The metric objects of one registry: two workers of a process that
    share the application's registry add to the same series."""

    _lock = threading.Lock()
    _by_registry: weakref.WeakKeyDictionary[CollectorRegistry, _Instruments] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.tasks = Counter(
            "cairn_worker_tasks",
            "Executions of tasks and entrypoints this worker ended, by outcome.",
            ["name", "kind", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "cairn_worker_task_duration_seconds",
            "Time from an execution's start on this worker to its end.",
            ["name", "kind"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.in_use = Gauge(
            "cairn_worker_slots_in_use",
            "Slots held by running executions (local calls hold none).",
            ["kind"],
            registry=registry,
        )
        self.slots = Gauge(
            "cairn_worker_slots",
            "Slots of the running workers: max_concurrency and max_entrypoints.",
            ["kind"],
            registry=registry,
        )
        for kind in (TASK, ENTRYPOINT):  # present from the first scrape
            self.in_use.labels(kind=kind)
            self.slots.labels(kind=kind)

    @classmethod
    def of(cls, registry: CollectorRegistry) -> _Instruments:
        with cls._lock:
            known = cls._by_registry.get(registry)
            if known is None:
                known = cls._by_registry[registry] = cls(registry)
            return known


class WorkerMetrics(NoMetrics):
    def __init__(
        self,
        *,
        registry: CollectorRegistry,
        address: str | None,
        max_tasks: int,
        max_entrypoints: int,
    ) -> None:
        self._instruments = _Instruments.of(registry)
        self._registry = registry
        self._listen = address
        self._capacity = {TASK: max_tasks, ENTRYPOINT: max_entrypoints}
        self._server: Any = None
        self.address = None
        """Where /metrics is served (host:port) while the worker runs."""

    def start(self) -> None:
        for kind, capacity in self._capacity.items():
            self._instruments.slots.labels(kind=kind).inc(capacity)
        if self._listen is not None and self._server is None:
            from prometheus_client import start_http_server

            host, port = _host_port(self._listen)
            self._server, _ = start_http_server(port, addr=host, registry=self._registry)
            bound = self._server.server_address
            self.address = f"{host}:{bound[1]}"

    def stop(self) -> None:
        for kind, capacity in self._capacity.items():
            self._instruments.slots.labels(kind=kind).dec(capacity)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            self.address = None

    @contextlib.contextmanager
    def in_slot(self, assignment: Assignment) -> Iterator[None]:
        gauge = self._instruments.in_use.labels(kind=kind_of(assignment))
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    async def timed(self, assignment: Assignment, body: Awaitable[str]) -> None:
        """Run an execution's `body`, which returns its outcome, and count it."""
        started = time.perf_counter()
        outcome = "cancelled"  # unless the body says otherwise
        try:
            outcome = await body
        finally:
            name, kind = assignment.name, kind_of(assignment)
            elapsed = time.perf_counter() - started
            self._instruments.duration.labels(name=name, kind=kind).observe(elapsed)
            self._instruments.tasks.labels(name=name, kind=kind, outcome=outcome).inc()


def for_worker(
    *,
    address: str | None,
    registry: CollectorRegistry | None,
    max_tasks: int,
    max_entrypoints: int,
) -> NoMetrics:
    """The metrics of a worker: nothing unless `address` or `registry` is given."""
    if address is None and registry is None:
        return NoMetrics()
    try:
        from prometheus_client import CollectorRegistry
    except ImportError as missing:
        raise ImportError(
            "Worker metrics need prometheus-client: pip install prometheus-client"
        ) from missing
    if address is not None:
        _host_port(address)  # a bad address fails here, not when the worker runs
    return WorkerMetrics(
        registry=registry if registry is not None else CollectorRegistry(),
        address=address,
        max_tasks=max_tasks,
        max_entrypoints=max_entrypoints,
    )


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"metrics_address must be host:port, not {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)
