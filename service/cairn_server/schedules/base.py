"""Schedules as the service keeps them (ScheduleService, DESIGN 8.2: each in
one namespace). Times are seconds since the epoch: due and fire times on the
service's timer clock, claims on the wall clock (like leases)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from cairn_server.domain import Json
from cairn_server.schedules.spec import Spec

RECENT_FIRINGS = 20
"""Firings kept per schedule (the newest); older finished ones are deleted."""


class ThreadPolicy(enum.StrEnum):
    NEW_THREAD = "new_thread"
    ONE_THREAD = "one_thread"


class OverlapPolicy(enum.StrEnum):
    SKIP = "skip"
    QUEUE = "queue"
    CANCEL_PREVIOUS = "cancel_previous"


class CatchupPolicy(enum.StrEnum):
    SKIP = "skip"
    LATEST = "latest"


class FiringState(enum.StrEnum):
    PENDING = "pending"
    WAITING = "waiting"
    STARTED = "started"
    SKIPPED = "skipped"
    FAILED = "failed"

    @property
    def open(self) -> bool:
        """Whether a replica still has to act on the firing."""
        return self in (FiringState.PENDING, FiringState.WAITING)


@dataclass(frozen=True, slots=True)
class FiringRecord:
    namespace: str
    schedule_id: str
    firing_id: str
    due_at: float
    fired_at: float
    state: FiringState = FiringState.PENDING
    run_id: str = ""
    thread_id: str = ""
    """The thread's id as its namespace knows it (unscoped)."""
    message: str = ""
    triggered: bool = False
    claimed_by: str = ""
    claim_until: float = 0.0
    """Wall-clock time until which `claimed_by` acts on an open firing; 0:
    nobody, any replica may take it."""


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    namespace: str
    schedule_id: str
    spec: Spec
    target: str
    input: Json = None
    metadata: dict[str, Json] = field(default_factory=dict)
    thread_policy: ThreadPolicy = ThreadPolicy.NEW_THREAD
    thread_id: str = ""
    overlap_policy: OverlapPolicy = OverlapPolicy.SKIP
    catchup_policy: CatchupPolicy = CatchupPolicy.LATEST
    paused: bool = False
    next_fire_at: float = 0.0
    """The next due time (kept while paused, and recomputed on resume)."""
    created_at: float = 0.0
    updated_at: float = 0.0
    request_id: str = ""
    recent_firings: tuple[FiringRecord, ...] = ()
    """Newest first; filled by reads that ask for them."""

    def thread_of(self, firing_id: str) -> str:
        """The (unscoped) thread id of a firing's run."""
        if self.thread_policy is ThreadPolicy.ONE_THREAD:
            return self.thread_id
        return f"{self.schedule_id}-{firing_id}"

    def request_id_of(self, firing_id: str) -> str:
        """The request_id of a firing's run: one run per firing, ever."""
        return f"schedule:{self.schedule_id}:{firing_id}"
