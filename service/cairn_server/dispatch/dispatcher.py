"""Matches tasks to connected workers.

Each task name has a FIFO queue. A task goes to the least loaded connected
worker that serves its name and has a free slot (entrypoints and tasks have
separate slots, so entrypoints waiting on their tasks cannot starve them). A
worker whose stream drops loses its tasks, which are handed back to their runs
for re-dispatch.

Another replica may connect as a relay for its own workers (api/relay.py). A
relay gets only the tasks of names that no worker connected here serves, and a
task relayed here goes only to a worker connected here, never to a relay.

A queued task of a run driven here waits for a reason (WaitReason): no
connected worker or relay serves its name, or all that do are busy. The run
is told when a task is queued and whenever that reason changes (a worker
connects or leaves); it is told the wait ended by `on_assigned`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cairn_server import namespaces
from cairn_server.dispatch.messages import (
    Assignment,
    CancelNotice,
    Outgoing,
    Registration,
    Relayed,
)
from cairn_server.dispatch.timeouts import CallLater, Expiry, TaskTimers, timeout_error
from cairn_server.domain import ErrorRecord, RetryPolicy, TaskKind, TaskTimeouts, WaitReason
from cairn_server.engine.tasks import child_task_id
from cairn_server.metrics import Metrics, WorkerSample

_ids = itertools.count(1)


@dataclass(eq=False)
class WorkerConnection:
    """One connected worker stream."""

    worker_id: str
    registrations: dict[str, Registration]
    max_tasks: int = 16
    max_entrypoints: int = 256
    identity: str = ""
    sdk_language: str = ""
    sdk_version: str = ""
    accepts_batches: bool = False
    accepts_journal_pages: bool = False
    """It reads JournalPage messages: a journal of any size reaches it."""
    relay: bool = False
    """Another replica, relaying the tasks sent to it to its own workers."""
    namespace: str = ""
    """The namespace a worker serves (its registrations are scoped by it);
    empty for a relay, whose names are of every namespace."""
    graphs: tuple[str, ...] = ()
    """The graphs it registered (their nodes and routers are among the
    registrations, as tasks), as ListWorkers shows them."""
    held: dict[str, Assignment] = field(default_factory=dict)
    running: dict[TaskKind, int] = field(
        default_factory=lambda: {TaskKind.TASK: 0, TaskKind.ENTRYPOINT: 0}
    )
    outbox: asyncio.Queue[Outgoing] = field(default_factory=asyncio.Queue)
    serial: int = field(default_factory=lambda: next(_ids))

    def kind_of(self, name: str) -> TaskKind:
        return self.registrations[name].kind

    def has_slot(self, name: str) -> bool:
        kind = self.kind_of(name)
        limit = self.max_entrypoints if kind is TaskKind.ENTRYPOINT else self.max_tasks
        return self.running[kind] < limit

    def load(self) -> int:
        return self.running[TaskKind.TASK] + self.running[TaskKind.ENTRYPOINT]


class Dispatcher:
    """Task queues per name and the workers that drain them.

    Names are scoped by namespace (cairn_server/namespaces.py): a worker's
    registrations are keyed by the scoped names of its namespace, and a task
    is queued under its `route`, its name scoped by its run's namespace, so
    a worker only ever receives the tasks of its own namespace.

    `on_assigned(a)` runs when a worker receives `a`; `on_lost(a)` when the
    worker holding `a` disconnects. Both are called synchronously, before
    any later message of that worker can be handled. `on_waiting(a, reason)`
    runs when `a` (of a run driven here) is queued, and again whenever the
    reason it waits changes while it stays queued.
    """

    def __init__(
        self,
        *,
        on_assigned: Callable[[Assignment], None],
        on_lost: Callable[[Assignment], None],
        on_waiting: Callable[[Assignment, WaitReason], None] | None = None,
        on_timed_out: Callable[[Assignment, ErrorRecord], None] | None = None,
        clock: Callable[[], float] | None = None,
        call_later: CallLater | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics if metrics is not None else Metrics()
        self.metrics.watch_workers(self._worker_samples)
        self._queued_at: dict[str, float] = {}
        """Task id -> when it was queued (cairn_task_queue_wait_seconds)."""
        self._on_assigned = on_assigned
        self._on_lost = on_lost
        self._on_waiting = on_waiting
        self._on_timed_out = on_timed_out
        self.timers = TaskTimers(self._expired, clock=clock, call_later=call_later)
        """The timeouts of the tasks of runs driven here (TaskTimeouts); an
        expired schedule-to-start or start-to-close fails the attempt through
        `on_timed_out(a, error)`, an expired heartbeat loses the task as a
        dropped stream does (`on_lost`), preferring another worker for it."""
        self._timeouts: dict[str, TaskTimeouts | None] = {}
        self._avoid: dict[str, int] = {}  # task id -> the worker that lost it to a heartbeat
        self._queues: dict[str, OrderedDict[str, Assignment]] = {}
        self._workers: dict[int, WorkerConnection] = {}
        self._holders: dict[str, WorkerConnection] = {}
        self.released = asyncio.Event()
        """Set whenever a worker gives a task back (done or lost)."""
        self.workers_changed = asyncio.Event()
        """Set whenever a worker (not a relay) connects or goes away."""

    # --- workers --------------------------------------------------------------

    def add(self, worker: WorkerConnection) -> None:
        self._workers[worker.serial] = worker
        for registration in worker.registrations.values():
            self._timeouts[registration.name] = registration.timeouts
        if not worker.relay:
            self.workers_changed.set()
        self._fill(worker)
        self._recheck_waiting(worker.registrations)

    def remove(self, worker: WorkerConnection) -> list[Assignment]:
        """Forget a worker; its tasks go back to their runs."""
        self._workers.pop(worker.serial, None)
        lost = list(worker.held.values())
        worker.held.clear()
        for assignment in lost:
            self._holders.pop(assignment.task_id, None)
            self.timers.stop(assignment.task_id)
            if assignment.relay is not None:
                assignment.relay.lost(assignment)
            else:
                self._on_lost(assignment)
        self.released.set()
        if not worker.relay:
            self.workers_changed.set()
            # Names no worker here serves any more go to relays now.
            for relay in [w for w in self._workers.values() if w.relay]:
                self._fill(relay)
        self._recheck_waiting(worker.registrations)
        return lost

    def workers(self) -> list[WorkerConnection]:
        return list(self._workers.values())

    def direct_workers(self) -> list[WorkerConnection]:
        """The workers connected here, without the relays of other replicas."""
        return [w for w in self._workers.values() if not w.relay]

    def retry_policy(self, name: str) -> RetryPolicy | None:
        for worker in self._workers.values():
            registration = worker.registrations.get(name)
            if registration is not None and registration.retry_policy is not None:
                return registration.retry_policy
        return None

    def timeouts(self, name: str) -> TaskTimeouts | None:
        """The timeouts of the last worker that registered `name` here, even
        if it left since (a schedule-to-start timeout matters most then)."""
        return self._timeouts.get(name)

    # --- tasks ----------------------------------------------------------------

    def submit(self, assignment: Assignment) -> None:
        """Queue or assign a task to a worker of its run's namespace."""
        worker = self._pick(assignment)
        if worker is None:
            queue = self._queues.setdefault(assignment.route, OrderedDict())
            queue[assignment.task_id] = assignment
            if assignment.relay is None:
                self.timers.queued(assignment)
                self._queued_at[assignment.task_id] = time.perf_counter()
            self._report_waiting(assignment)
        else:
            self._assign(worker, assignment)

    def hold_local_call(
        self, worker: WorkerConnection, parent: Assignment, index: int, name: str
    ) -> bool:
        """The worker holding `parent` runs its call at `index` itself: hold
        that call for it as if it had been assigned, without sending it (a
        call of a relayed task is relayed too). False, holding nothing, when
        another worker holds that call already: the worker is told to drop
        its copy."""
        child = Assignment(
            task_id=child_task_id(parent.task_id, index),
            name=name,
            run_id=parent.run_id,
            thread_id=parent.thread_id,
            checkpoint_id=parent.checkpoint_id,
            attempt=1,
            input=None,
            journal=(),
            resume=(),
            path=(),
            is_root=False,
            local=True,
            relay=parent.relay,
        )
        if child.task_id in self._holders:
            worker.outbox.put_nowait(CancelNotice(child.task_id, "another worker runs this call"))
            return False
        worker.held[child.task_id] = child
        worker.running[TaskKind.TASK] += 1
        self._holders[child.task_id] = worker
        return True

    def wait_reason(self, route: str, task_id: str) -> WaitReason | None:
        """Why the task waits, while it is queued here; None once it is not."""
        queue = self._queues.get(route)
        assignment = queue.get(task_id) if queue else None
        return None if assignment is None else assignment.wait_reason

    def heartbeat(self, worker: WorkerConnection, task_id: str) -> Assignment | None:
        """The worker says the task it holds is alive; None if it does not
        hold it."""
        assignment = worker.held.get(task_id)
        if assignment is not None:
            self.timers.heartbeat(task_id)
        return assignment

    def held_by(self, worker: WorkerConnection, task_id: str) -> Assignment | None:
        return worker.held.get(task_id)

    def holder(self, task_id: str) -> WorkerConnection | None:
        return self._holders.get(task_id)

    def release(self, worker: WorkerConnection, task_id: str) -> Assignment | None:
        """The worker is done with a task it holds; None if it does not hold it."""
        assignment = worker.held.pop(task_id, None)
        if assignment is None:
            return None
        self._holders.pop(task_id, None)
        self.timers.stop(task_id)
        worker.running[assignment.kind] -= 1
        self.released.set()
        self._fill(worker)
        return assignment

    def withdraw(self, task_ids: Iterable[str], reason: str) -> None:
        """Remove tasks from their queues or their workers."""
        for task_id in task_ids:
            self.timers.stop(task_id)
            self._avoid.pop(task_id, None)
            self._queued_at.pop(task_id, None)
            for queue in self._queues.values():
                if queue.pop(task_id, None) is not None:
                    break
            worker = self._holders.get(task_id)
            if worker is not None and self.release(worker, task_id) is not None:
                worker.outbox.put_nowait(CancelNotice(task_id, reason))

    def withdraw_run(self, run_id: str, reason: str) -> None:
        """Withdraw every task of a run this replica drives, queued or held."""
        self.withdraw(self._task_ids(lambda a: a.run_id == run_id and a.relay is None), reason)

    def withdraw_relayed(self, relay: Relayed, reason: str, task_id: str | None = None) -> None:
        """Withdraw the task `task_id` (else every task) that came through `relay`."""
        self.withdraw(
            self._task_ids(lambda a: a.relay is relay and task_id in (None, a.task_id)), reason
        )

    def withdraw_queued(self, run_id: str) -> None:
        """Forget a run's tasks that no worker has received yet."""
        for queue in self._queues.values():
            for task_id in [t for t, a in queue.items() if a.run_id == run_id and a.relay is None]:
                del queue[task_id]
                self.timers.stop(task_id)
                self._queued_at.pop(task_id, None)

    def tasks_in_flight(self, run_ids: set[str]) -> int:
        """Tasks (not entrypoints, which wait on their tasks) of these runs
        that workers hold."""
        return sum(
            1
            for task_id, worker in self._holders.items()
            if worker.held[task_id].run_id in run_ids
            and worker.held[task_id].kind is TaskKind.TASK
            and worker.held[task_id].relay is None
        )

    # --- internals ------------------------------------------------------------

    def _worker_samples(self) -> list[WorkerSample]:
        """The connected workers as cairn_workers_connected and
        cairn_worker_free_slots read them at scrape time."""
        samples = []
        for worker in self.direct_workers():
            free: dict[tuple[str, str], int] = {}
            for name, registration in worker.registrations.items():
                kind = registration.kind
                limit = worker.max_entrypoints if kind is TaskKind.ENTRYPOINT else worker.max_tasks
                free[namespaces.split(name)] = max(limit - worker.running[kind], 0)
            samples.append(WorkerSample(worker.sdk_language, free))
        return samples

    def _task_ids(self, which: Callable[[Assignment], bool]) -> list[str]:
        queued = [t for q in self._queues.values() for t, a in q.items() if which(a)]
        held = [t for t, worker in self._holders.items() if which(worker.held[t])]
        return [*queued, *held]

    def _served_here(self, name: str) -> bool:
        return any(name in w.registrations for w in self._workers.values() if not w.relay)

    def _may_take(self, worker: WorkerConnection, assignment: Assignment) -> bool:
        """A relay takes only tasks of this replica's runs whose name no
        worker connected here serves. A worker that lost the task to its
        heartbeat timeout takes it again only when no other one serves it."""
        avoided = self._avoid.get(assignment.task_id)
        if avoided == worker.serial and any(
            assignment.route in w.registrations and w.serial != avoided
            for w in self._workers.values()
        ):
            return False
        if not worker.relay:
            return True
        return assignment.relay is None and not self._served_here(assignment.route)

    def _pick(self, assignment: Assignment) -> WorkerConnection | None:
        name = assignment.route
        candidates = [
            w
            for w in self._workers.values()
            if name in w.registrations and w.has_slot(name) and self._may_take(w, assignment)
        ]
        return min(candidates, key=WorkerConnection.load, default=None)

    def _assign(self, worker: WorkerConnection, assignment: Assignment) -> None:
        assignment.kind = worker.kind_of(assignment.route)
        self._avoid.pop(assignment.task_id, None)
        if assignment.relay is None:
            self.timers.started(assignment)
            queued_at = self._queued_at.pop(assignment.task_id, None)
            waited = 0.0 if queued_at is None else time.perf_counter() - queued_at
            self.metrics.task_queue_wait.labels(name=namespaces.unscoped(assignment.name)).observe(
                waited
            )
        worker.held[assignment.task_id] = assignment
        worker.running[assignment.kind] += 1
        self._holders[assignment.task_id] = worker
        if assignment.relay is None:
            self._on_assigned(assignment)
        worker.outbox.put_nowait(assignment)

    def _report_waiting(self, assignment: Assignment) -> None:
        """Tell the run why its queued task waits, when that changed."""
        if assignment.relay is not None:
            return  # the owning replica sees it held by its relay
        name = assignment.route
        served = any(
            name in w.registrations and self._may_take(w, assignment)
            for w in self._workers.values()
        )
        reason = WaitReason.WORKER_BUSY if served else WaitReason.NO_WORKER
        if reason is not assignment.wait_reason:
            assignment.wait_reason = reason
            if self._on_waiting is not None:
                self._on_waiting(assignment, reason)

    def _recheck_waiting(self, names: Iterable[str]) -> None:
        """After a worker came or went: the queued tasks of its names."""
        for name in names:
            for assignment in list(self._queues.get(name, {}).values()):
                self._report_waiting(assignment)

    def _fill(self, worker: WorkerConnection) -> None:
        for name in worker.registrations:
            queue = self._queues.get(name)
            if not queue:
                continue
            if not worker.relay and not self._avoid:
                while queue and worker.has_slot(name):
                    _, assignment = queue.popitem(last=False)
                    self._assign(worker, assignment)
            elif not worker.relay:  # a task may avoid this worker (heartbeat timeout)
                for task_id, assignment in list(queue.items()):
                    if not worker.has_slot(name):
                        break
                    if self._may_take(worker, assignment):
                        del queue[task_id]
                        self._assign(worker, assignment)
            elif not self._served_here(name):
                for task_id, assignment in list(queue.items()):
                    if not worker.has_slot(name):
                        break
                    if assignment.relay is None:
                        del queue[task_id]
                        self._assign(worker, assignment)

    def _expired(self, assignment: Assignment, which: Expiry) -> None:
        """A timeout of a task of a run driven here ran out (TaskTimers)."""
        task_id = assignment.task_id
        if which is Expiry.SCHEDULE_TO_START:
            queue = self._queues.get(assignment.route)
            if queue is None or queue.get(task_id) is not assignment:
                return
            del queue[task_id]
            self._avoid.pop(task_id, None)
            self._queued_at.pop(task_id, None)
            if self._on_timed_out is not None:
                self._on_timed_out(assignment, timeout_error(assignment, which))
            return
        worker = self._holders.get(task_id)
        if worker is None or worker.held.get(task_id) is not assignment:
            return
        seconds = getattr(assignment.timeouts, which.value)
        if which is Expiry.HEARTBEAT:
            self._avoid[task_id] = worker.serial  # before the run dispatches it again
        self.release(worker, task_id)
        worker.outbox.put_nowait(
            CancelNotice(task_id, f"its {which.value} timeout of {seconds:g}s expired")
        )
        if which is Expiry.HEARTBEAT:
            self._on_lost(assignment)
        elif self._on_timed_out is not None:
            self._on_timed_out(assignment, timeout_error(assignment, which))
