"""The store interface every backend implements.

Reads are individual coroutines. Every write goes through `commit(batch)`: a
WriteBatch is applied atomically, and batches are applied in the order they
were submitted, so a run's writes keep their order whatever its durability.
Backends may apply several queued batches in one transaction (group commit).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from cairn_server.domain import (
    CheckpointRecord,
    EventRecord,
    Json,
    PendingWrite,
    RunRecord,
    RunState,
    ThreadRecord,
    ThreadStatus,
)
from cairn_server.namespaces import DEFAULT as DEFAULT_NAMESPACE


class StoreError(Exception):
    """Base of the store's own errors."""


class StoreUnavailable(StoreError):
    """The database could not take the operation now (disk full, I/O error,
    connection lost past the store's own retries): nothing was applied, or an
    idempotent retry of the same batch is safe. It passes; callers retry."""


class ThreadAlreadyExists(StoreError):
    def __init__(self, thread_id: str) -> None:
        super().__init__(f"thread {thread_id!r} already exists")
        self.thread_id = thread_id


@dataclass(frozen=True, slots=True)
class Lease:
    """The right of `owner` to write run `run_id` while its token is `token`."""

    run_id: str
    owner: str
    token: int


class LeaseLost(StoreError):
    """The run was taken over: its writes under this lease are refused."""

    def __init__(self, lease: Lease) -> None:
        super().__init__(f"replica {lease.owner!r} no longer holds run {lease.run_id!r}")
        self.lease = lease


class ThreadBusy(StoreError):
    """A run could not start: another run holds the thread."""

    def __init__(self, thread_id: str) -> None:
        super().__init__(f"thread {thread_id!r} has an active run")
        self.thread_id = thread_id


class ThreadChanged(StoreError):
    """A run could not start: the thread changed (a run started or ended on
    it) since the start read it. Read it again and decide again."""

    def __init__(self, thread_id: str) -> None:
        super().__init__(f"thread {thread_id!r} changed meanwhile")
        self.thread_id = thread_id


@dataclass(slots=True)
class ThreadStatusChange:
    thread_id: str
    status: ThreadStatus
    updated_at: float


@dataclass(slots=True)
class WriteSet:
    """Pending writes of one checkpoint."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    writes: list[PendingWrite]


@dataclass(slots=True)
class WriteBatch:
    """Everything one commit writes. Empty lists are skipped.

    - threads: inserted, or replaced when the id exists (upsert).
    - thread_statuses: status and updated_at of existing threads.
    - runs: upserted by run_id.
    - checkpoints: inserted (insert-or-ignore by id). Each channel value is
      stored once per (thread, ns, channel, version); `channel_values` need only
      hold the channels whose version is new.
    - writes: insert-or-ignore per (thread, ns, checkpoint, task, idx) when
      idx >= 0, upsert when idx < 0 (special channels).
    - events: appended (insert-or-ignore per (run_id, event_id)).
    - targets: entrypoint and graph names that workers registered.
    - graphs: (name, spec as JSON) of registered graphs, upserted.
    - timers: (run_id, wake_at), each run's timer from now on, applied after
      `runs`; the run loses its owner and lease (its token moves on). An
      active run sleeps until then (any replica claims it when due:
      Store.claim_due_runs); an interrupted run's interrupts time out then
      (Store.claim_due_interrupts).
    - clear_interrupt_timers: a thread whose interrupted runs' timers end
      (a new run on the thread answers or abandons their interrupts).

    `lease` and `claim_thread` are conditions checked first, not writes.
    """

    threads: list[ThreadRecord] = field(default_factory=list)
    thread_statuses: list[ThreadStatusChange] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    checkpoints: list[CheckpointRecord] = field(default_factory=list)
    writes: list[WriteSet] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    graphs: list[tuple[str, Json]] = field(default_factory=list)
    timers: list[tuple[str, float]] = field(default_factory=list)
    clear_interrupt_timers: str = ""
    lease: Lease | None = None
    """Fences the batch: applied only while its run's token is this one
    (else LeaseLost); a batch that inserts the run gives it this lease."""
    claim_thread: str = ""
    """A run start: applied only when this thread is not busy (else
    ThreadBusy); the batch itself marks it busy."""
    claim_thread_at: float | None = None
    """With claim_thread: the thread's updated_at as the start read it;
    applied only while it still is (else ThreadChanged), so two starts that
    read the same thread (two resumes of one interrupt) cannot both apply."""

    def __bool__(self) -> bool:
        return any(
            (
                self.threads,
                self.thread_statuses,
                self.runs,
                self.checkpoints,
                self.writes,
                self.events,
                self.targets,
                self.graphs,
                self.timers,
                self.clear_interrupt_timers,
            )
        )

    def extend(self, other: WriteBatch) -> None:
        self.threads.extend(other.threads)
        self.thread_statuses.extend(other.thread_statuses)
        self.runs.extend(other.runs)
        self.checkpoints.extend(other.checkpoints)
        self.writes.extend(other.writes)
        self.events.extend(other.events)
        self.targets.extend(other.targets)
        self.graphs.extend(other.graphs)
        self.timers.extend(other.timers)
        self.clear_interrupt_timers = self.clear_interrupt_timers or other.clear_interrupt_timers
        self.lease = self.lease or other.lease
        self.claim_thread = self.claim_thread or other.claim_thread
        if self.claim_thread_at is None:
            self.claim_thread_at = other.claim_thread_at


@dataclass(slots=True)
class PruneResult:
    """What a retention call removed."""

    thread_ids: list[str]
    """The requested threads that exist (for deletions: that were deleted), in
    the order given."""
    deleted_checkpoints: int


@dataclass(slots=True)
class LgBlob:
    """A LangGraph channel value at one version, as its serializer wrote it."""

    channel: str
    version: str
    type: str
    data: bytes | None


@dataclass(slots=True)
class LgWrite:
    """A LangGraph pending write; idx < 0 for special channels."""

    task_id: str
    task_path: str
    idx: int
    channel: str
    type: str
    data: bytes | None


@dataclass(slots=True)
class LgCheckpoint:
    """A checkpoint stored through CheckpointService (LangGraph's format).

    `data` is the serialized checkpoint without channel values; `metadata` is
    JSON text and `run_id` its run_id, if any. When read, `blobs` holds the
    stored value of each channel at its version in `channel_versions` and
    `writes` the pending writes in (task_path, task_id, idx) order; when put,
    `blobs` holds the new values.
    """

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    type: str
    data: bytes
    metadata: str
    channel_versions: dict[str, str]
    run_id: str | None = None
    blobs: list[LgBlob] = field(default_factory=list)
    writes: list[LgWrite] = field(default_factory=list)


class Store(abc.ABC):
    """Async checkpoint, run and event store."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish queued commits and disconnect."""

    # --- writes ---------------------------------------------------------

    @abc.abstractmethod
    def submit(self, batch: WriteBatch) -> asyncio.Future[object]:
        """Queue `batch` now; the future resolves once it is applied
        atomically, after every batch submitted before it."""

    async def commit(self, batch: WriteBatch) -> None:
        """Submit `batch` and wait until it is applied."""
        await asyncio.shield(self.submit(batch))

    @abc.abstractmethod
    async def create_thread(self, thread: ThreadRecord) -> None:
        """Insert a thread; raise ThreadAlreadyExists when the id is taken."""

    @abc.abstractmethod
    async def delete_thread(self, thread_id: str) -> bool:
        """Delete a thread with its runs, checkpoints, writes and events.
        Returns False when there was no such thread."""

    # --- retention ------------------------------------------------------

    @abc.abstractmethod
    async def prune_checkpoints(
        self, thread_ids: Sequence[str], *, keep_latest: int
    ) -> PruneResult:
        """Keep the newest `keep_latest` (at least 1) checkpoints of each
        namespace of each thread and delete the older ones, with their pending
        writes and every channel value no remaining checkpoint points at. Runs
        and events stay. Applied in order with the submitted batches."""

    @abc.abstractmethod
    async def delete_threads(
        self, thread_ids: Sequence[str], *, updated_before: float | None = None
    ) -> PruneResult:
        """Delete threads as delete_thread does, all in one transaction. With
        `updated_before`, only the threads last updated before it whose status
        is not busy (the thread TTL), decided when the deletion is applied."""

    @abc.abstractmethod
    async def expired_threads(self, updated_before: float, *, limit: int) -> list[str]:
        """Ids of up to `limit` threads last updated before `updated_before`
        whose status is not busy, least recently updated first."""

    @abc.abstractmethod
    async def delete_run(self, thread_id: str, run_id: str) -> None:
        """Delete a run with its events and the checkpoints it made (their
        writes and the values no other checkpoint points at), in one
        transaction: the rollback of a run that has ended."""

    # --- leases (see store/leases.py) ------------------------------------

    @abc.abstractmethod
    async def renew_replica(
        self, replica_id: str, *, address: str, now: float, expires_at: float
    ) -> None:
        """Create or extend the replica's row until `expires_at`."""

    @abc.abstractmethod
    async def remove_replica(self, replica_id: str) -> None: ...

    @abc.abstractmethod
    async def live_replicas(self, now: float) -> dict[str, str]:
        """The replicas whose row is live at `now`: id -> advertised address."""

    @abc.abstractmethod
    async def claim_runs(
        self, replica_id: str, *, now: float, own: bool
    ) -> list[tuple[RunRecord, Lease]]:
        """Take over the active runs of other replicas whose row expired at
        `now` (and with `own`, those an earlier life of `replica_id` held),
        oldest first, each with its new lease."""

    @abc.abstractmethod
    async def release_runs(self, replica_id: str) -> list[str]:
        """Give up every active run of the replica, so that any replica may
        claim them at once; returns their ids."""

    @abc.abstractmethod
    async def owned_runs(self, replica_id: str) -> dict[str, int]:
        """The active runs the replica owns, with their current tokens."""

    @abc.abstractmethod
    async def request_stop(self, run_id: str, kind: str) -> bool:
        """Ask the owner of an active run to stop it (kind: "cancel");
        False when the run is not active."""

    @abc.abstractmethod
    async def stop_requests(self, replica_id: str) -> list[tuple[str, str]]:
        """(run_id, kind) of the stops asked of the replica's active runs."""

    @abc.abstractmethod
    async def claim_due_runs(
        self, replica_id: str, *, now: float, limit: int
    ) -> list[tuple[RunRecord, Lease]]:
        """Take up to `limit` sleeping runs whose wake time is at most `now`
        (WriteBatch.sleeps), earliest first, each with its new lease; a run
        is claimed by one replica only. They no longer sleep."""

    @abc.abstractmethod
    async def claim_due_interrupts(
        self, *, now: float, retry_at: float, limit: int
    ) -> list[RunRecord]:
        """Up to `limit` interrupted runs whose interrupt timer is due at
        `now`, earliest first; their timers move to `retry_at`, so one
        replica answers them and another does once `retry_at` passes if that
        one could not (a run start on the thread clears them)."""

    @abc.abstractmethod
    async def clear_timer(self, run_id: str) -> None:
        """Drop the run's timer (an interrupt timer that nothing can answer)."""

    @abc.abstractmethod
    async def next_wake_time(self) -> float | None:
        """The earliest timer of a sleeping or interrupted run, if any."""

    @abc.abstractmethod
    async def claim_sleeping_run(self, run_id: str, replica_id: str) -> Lease | None:
        """Take one sleeping run now, due or not (to cancel it); None when it
        does not sleep (any more)."""

    # --- threads --------------------------------------------------------

    @abc.abstractmethod
    async def get_thread(self, thread_id: str) -> ThreadRecord | None: ...

    @abc.abstractmethod
    async def list_threads(
        self,
        *,
        limit: int,
        page_token: str = "",
        metadata: dict[str, Json] | None = None,
        status: ThreadStatus | None = None,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> tuple[list[ThreadRecord], str]:
        """The namespace's threads newest first; returns (threads,
        next_page_token)."""

    # --- runs -----------------------------------------------------------

    @abc.abstractmethod
    async def get_run(self, run_id: str) -> RunRecord | None: ...

    @abc.abstractmethod
    async def find_run_by_request_id(self, thread_id: str, request_id: str) -> RunRecord | None: ...

    @abc.abstractmethod
    async def list_runs(
        self,
        thread_id: str | None,
        *,
        limit: int,
        page_token: str = "",
        state: RunState | None = None,
        waiting: bool = False,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> tuple[list[RunRecord], str]:
        """A thread's runs newest first, or with thread_id None the runs of
        every thread of `namespace` (which only then counts); only those in
        `state` when given, and with `waiting` only those whose `waiting` is
        not empty. Returns (runs, next_page_token)."""

    @abc.abstractmethod
    async def list_active_runs(self) -> list[RunRecord]:
        """Runs in state PENDING or RUNNING, oldest first (for recovery)."""

    # --- checkpoints ----------------------------------------------------

    @abc.abstractmethod
    async def get_checkpoint(
        self, thread_id: str, checkpoint_ns: str = "", checkpoint_id: str | None = None
    ) -> CheckpointRecord | None:
        """The given checkpoint, or the latest (highest id) when id is None,
        with all channel values loaded."""

    @abc.abstractmethod
    async def list_checkpoints(
        self,
        thread_id: str,
        checkpoint_ns: str = "",
        *,
        before: str | None = None,
        limit: int | None = None,
        metadata: dict[str, Json] | None = None,
    ) -> list[CheckpointRecord]:
        """Checkpoints newest first, with channel values loaded."""

    @abc.abstractmethod
    async def get_writes(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str
    ) -> list[PendingWrite]:
        """Pending writes of a checkpoint ordered by (task_path, task_id, idx)."""

    # --- events and targets ----------------------------------------------

    @abc.abstractmethod
    async def read_events(
        self, run_id: str, after_event_id: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        """A run's events with event_id > after_event_id, in order."""

    @abc.abstractmethod
    async def last_event_id(self, run_id: str) -> int:
        """The largest stored event id of the run, 0 when none."""

    @abc.abstractmethod
    async def known_targets(self) -> set[str]:
        """Every entrypoint and graph name a worker ever registered."""

    @abc.abstractmethod
    async def known_graphs(self) -> dict[str, Json]:
        """The latest spec (JSON) of every graph a worker registered."""

    # --- LangGraph checkpoints (CheckpointService) --------------------------
    # Stored in the native tables: deleting and pruning use the methods above.

    @abc.abstractmethod
    async def lg_list(
        self,
        *,
        thread_id: str | None,
        checkpoint_ns: str | None,
        checkpoint_id: str | None,
        metadata: dict[str, Json] | None,
        before: str | None,
        after: tuple[str, str, str] | None = None,
        limit: int,
        namespace: str | None = None,
    ) -> list[LgCheckpoint]:
        """Checkpoints put through CheckpointService, newest first, ordered by
        (checkpoint_id, thread_id, checkpoint_ns) descending; None means no
        condition. `after` is the (checkpoint_id, thread_id, checkpoint_ns) of
        the previous page's last checkpoint; `namespace` keeps the threads of
        one namespace (cairn_server/namespaces.py)."""

    async def lg_get(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> LgCheckpoint | None:
        """The given checkpoint, or the latest (highest id) when id is None."""
        found = await self.lg_list(
            thread_id=thread_id,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=checkpoint_id,
            metadata=None,
            before=None,
            limit=1,
        )
        return found[0] if found else None

    @abc.abstractmethod
    async def lg_put(self, checkpoint: LgCheckpoint) -> None:
        """Upsert the checkpoint, insert-or-ignore its new blobs, and create
        its thread (idle, no metadata) or move the thread's updated_at."""

    @abc.abstractmethod
    async def lg_put_writes(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str, writes: Sequence[LgWrite]
    ) -> None:
        """Insert-or-ignore the writes, or upsert them when every idx < 0."""

    @abc.abstractmethod
    async def lg_delete_for_runs(
        self, run_ids: Sequence[str], *, namespace: str = DEFAULT_NAMESPACE
    ) -> None:
        """Delete the LangGraph checkpoints of these runs (their metadata's
        run_id) on the namespace's threads, with their writes."""

    @abc.abstractmethod
    async def lg_copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy the thread's checkpoints, values and writes to the target
        (creating it like the source); what the target already has stays."""
