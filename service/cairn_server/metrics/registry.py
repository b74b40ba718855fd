"""Every metric the server exports, defined once (DESIGN.md 8.4).

One `Metrics` per server instance, with its own CollectorRegistry: two
servers in one process (tests, several replicas) never mix their numbers.
Components take it as the keyword `metrics=` (a fresh private one by
default) and touch only the attributes below. Values that the server holds
anyway (active runs, their waits, connected workers and free slots, leases
held) are read when Prometheus scrapes, from the callbacks the components
register (`watch_runs`, `watch_workers`, `watch_leases`), not kept twice.

Labels are bounded: names of targets and tasks (what workers register,
unscoped), namespaces, outcomes, reasons, status codes, languages. Never a
thread, run or task id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
"""A stream (a worker's Connect, a followed run) lasts as long as it is open."""
TASK_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
TASK_BUCKETS += (2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60)
COMMIT_BUCKETS: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01)
COMMIT_BUCKETS += (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

RUN_OUTCOMES = ("succeeded", "failed", "cancelled", "interrupted")
"""`outcome` of cairn_runs_ended_total: the state a run stopped in."""
TASK_OUTCOMES = (
    "succeeded",
    "failed",
    "interrupted",
    "sleeping",
    "suspended",
    "lost",
    "timed_out",
)
"""`outcome` of cairn_task_execution_seconds: how an attempt taken by a
worker ended (lost: its worker went away or stopped heartbeating)."""
WAIT_REASONS = ("no_worker", "worker_busy", "retry_backoff")
"""`reason` of cairn_runs_waiting (runtime/waiting.py)."""
STORE_ERROR_KINDS = ("unavailable", "error")
"""`kind` of cairn_store_errors_total: the store could not take a write now
(disk full, database gone: retried) or refused it."""


@dataclass(frozen=True, slots=True)
class RunSample:
    """What the scrape reads of one run this replica drives."""

    namespace: str
    waiting: frozenset[str]
    """The reasons it waits for (published waits, runtime/waiting.py)."""


@dataclass(frozen=True, slots=True)
class WorkerSample:
    """What the scrape reads of one worker connected to this replica."""

    language: str
    free_slots: Mapping[tuple[str, str], int]
    """(namespace, unscoped name) -> free slots for that name."""


class Metrics:
    """The server's metrics and the registry that exports them.

    Example::

        metrics = Metrics()
        metrics.runs_started.labels(target="checkout", namespace="default").inc()
        text = prometheus_client.generate_latest(metrics.registry)
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # --- RPCs (MetricsInterceptor) ---------------------------------------------
        self.rpc_requests = Counter(
            "cairn_rpc_requests_total",
            "gRPC calls that ended, by service, method and status code.",
            ["service", "method", "code"],
            registry=r,
        )
        self.rpc_duration = Histogram(
            "cairn_rpc_duration_seconds",
            "Time from a gRPC call's start to its end (for a stream: while it was open).",
            ["service", "method"],
            buckets=RPC_BUCKETS,
            registry=r,
        )
        # --- runs -----------------------------------------------------------------
        self.runs_started = Counter(
            "cairn_runs_started_total",
            "Runs started here (a start or a resume after an interrupt; not a takeover).",
            ["target", "namespace"],
            registry=r,
        )
        self.runs_ended = Counter(
            "cairn_runs_ended_total",
            "Runs that stopped here, by the state they stopped in (interrupted: waiting"
            " for a resume).",
            ["target", "namespace", "outcome"],
            registry=r,
        )
        self.schedule_firings = Counter(
            "cairn_schedule_firings_total",
            "Schedule firings acted on here, by what came of them (started, skipped,"
            " waiting, failed).",
            ["namespace", "outcome"],
            registry=r,
        )
        # --- tasks ----------------------------------------------------------------
        self.task_queue_wait = Histogram(
            "cairn_task_queue_wait_seconds",
            "Time from an attempt's dispatch to a worker taking it (0 when one was free).",
            ["name"],
            buckets=TASK_BUCKETS,
            registry=r,
        )
        self.task_execution = Histogram(
            "cairn_task_execution_seconds",
            "Time from a worker taking an attempt to its report, by outcome.",
            ["name", "outcome"],
            buckets=TASK_BUCKETS,
            registry=r,
        )
        self.task_retries = Counter(
            "cairn_task_retries_total",
            "Failed attempts that are tried again after their backoff.",
            ["name"],
            registry=r,
        )
        self.event_log_appends = Counter(
            "cairn_event_log_appends_total",
            "Events appended to the event logs of runs driven here.",
            registry=r,
        )
        # --- store ----------------------------------------------------------------
        self.store_commit = Histogram(
            "cairn_store_commit_seconds",
            "Time to apply and commit one group of writes (one transaction).",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.store_group_size = Histogram(
            "cairn_store_commit_group_size",
            "Write jobs (mostly runs' batches) committed together in one transaction.",
            buckets=GROUP_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            "cairn_store_errors_total",
            "Writes the store failed: kind unavailable (retried) or error (refused).",
            ["kind"],
            registry=r,
        )
        # --- leases (several replicas on one Postgres store) ---------------------------
        self.lease_takeovers = Counter(
            "cairn_lease_takeovers_total",
            "Runs this replica claimed from replicas that stopped renewing their lease.",
            registry=r,
        )
        self.fencing_rejections = Counter(
            "cairn_fencing_rejections_total",
            "Writes refused because another replica had taken the run over (LeaseLost).",
            registry=r,
        )
        # --- durable time (cairn_server/timers) -----------------------------------------
        self.timers_fired = Counter(
            "cairn_timers_fired_total",
            "Sleeping runs this replica woke once their timer was due.",
            registry=r,
        )
        self.timer_lateness = Histogram(
            "cairn_timer_lateness_seconds",
            "From a timer's due time to this replica claiming its run (service timer clock).",
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.leases_held = Gauge(
            "cairn_leases_held", "Runs whose lease this replica holds.", registry=r
        )
        for kind in STORE_ERROR_KINDS:
            self.store_errors.labels(kind=kind)
        self._state = _StateCollector()
        r.register(self._state)

    def run_started(self, target: str, namespace: str) -> None:
        """A run started: cairn_runs_started_total, and cairn_runs_active
        reports its namespace from now on (at 0 once its runs ended)."""
        self.runs_started.labels(target=target, namespace=namespace).inc()
        self._state.seen_namespace(namespace)

    def run_ended(self, target: str, namespace: str, outcome: str) -> None:
        """A run stopped: cairn_runs_ended_total (target as its caller names it)."""
        self.runs_ended.labels(target=target, namespace=namespace, outcome=outcome).inc()

    # --- values read at scrape time ------------------------------------------------

    def watch_runs(self, runs: Callable[[], Iterable[RunSample]]) -> None:
        """Read cairn_runs_active and cairn_runs_waiting from `runs()` at scrape."""
        self._state.runs = runs

    def watch_workers(self, workers: Callable[[], Iterable[WorkerSample]]) -> None:
        """Read cairn_workers_connected and cairn_worker_free_slots from
        `workers()` at scrape."""
        self._state.workers = workers

    def watch_leases(self, held: Callable[[], int]) -> None:
        """Read cairn_leases_held from `held()` at scrape."""
        self.leases_held.set_function(held)


class _StateCollector(Collector):
    """The gauges computed from the server's state when scraped. A label
    value once seen stays, at 0, so a series drops to 0 rather than vanishing."""

    def __init__(self) -> None:
        self.runs: Callable[[], Iterable[RunSample]] = tuple
        self.workers: Callable[[], Iterable[WorkerSample]] = tuple
        self._namespaces: set[str] = set()
        self._languages: set[str] = set()
        self._names: set[tuple[str, str]] = set()

    def seen_namespace(self, namespace: str) -> None:
        self._namespaces.add(namespace)

    def describe(self) -> Iterable[Metric]:
        return list(self._families({}, {}, {}, {}))

    def collect(self) -> Iterable[Metric]:
        active: dict[str, int] = {}
        waiting = dict.fromkeys(WAIT_REASONS, 0)
        for run in self.runs():
            active[run.namespace] = active.get(run.namespace, 0) + 1
            for reason in run.waiting:
                waiting[reason] = waiting.get(reason, 0) + 1
        connected: dict[str, int] = {}
        free: dict[tuple[str, str], int] = {}
        for worker in self.workers():
            language = _language(worker.language)
            connected[language] = connected.get(language, 0) + 1
            for key, slots in worker.free_slots.items():
                free[key] = free.get(key, 0) + slots
        self._namespaces.update(active)
        self._languages.update(connected)
        self._names.update(free)
        return list(
            self._families(
                {ns: active.get(ns, 0) for ns in sorted(self._namespaces)},
                waiting,
                {lang: connected.get(lang, 0) for lang in sorted(self._languages)},
                {key: free.get(key, 0) for key in sorted(self._names)},
            )
        )

    @staticmethod
    def _families(
        active: Mapping[str, int],
        waiting: Mapping[str, int],
        connected: Mapping[str, int],
        free: Mapping[tuple[str, str], int],
    ) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "cairn_runs_active", "Runs this replica drives now.", labels=["namespace"]
        )
        for namespace, count in active.items():
            family.add_metric([namespace], count)
        yield family
        family = GaugeMetricFamily(
            "cairn_runs_waiting",
            "Active runs with a task waiting, by reason (no_worker, worker_busy,"
            " retry_backoff), once the wait lasted half a second.",
            labels=["reason"],
        )
        for reason, count in waiting.items():
            family.add_metric([reason], count)
        yield family
        family = GaugeMetricFamily(
            "cairn_workers_connected",
            "Workers connected to this replica, by SDK language.",
            labels=["language"],
        )
        for language, count in connected.items():
            family.add_metric([language], count)
        yield family
        family = GaugeMetricFamily(
            "cairn_worker_free_slots",
            "Free slots of the connected workers serving a task or entrypoint name.",
            labels=["namespace", "name"],
        )
        for (namespace, name), slots in free.items():
            family.add_metric([namespace, name], slots)
        yield family


def _language(reported: str) -> str:
    """A worker's `sdk_language` as a label: what workers send is not
    trusted to stay bounded."""
    language = reported.strip().lower()
    if not language:
        return "unknown"
    if len(language) > 16 or not language.replace("-", "").isalnum():
        return "other"
    return language
