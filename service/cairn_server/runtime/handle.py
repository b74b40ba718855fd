"""RunHandle: the actor that drives one active run.

Messages for the run (from workers, timers and clients) go into its inbox; one
task applies them to the engine in order and executes the engine's decisions:
dispatching tasks, delivering child outcomes, appending events and storing
writes per the run's durability:

- sync: what the decisions wrote is committed before a task is dispatched or
  an outcome delivered, and before the next message is applied, so a result
  is durable before its parent sees it (the writes of one message and the
  run's end go in one commit).
- async: writes and events are submitted to the store's ordered queue without
  waiting; the final commit waits for all of them.
- exit: everything is kept in memory and committed when the run ends.

Every batch carries the run's lease: once another replica has taken the run
over, the store refuses it and the handle stops without writing (abandons
the run), leaving its followers to read the run from the store.

No run is left running without a reason. A store that cannot take writes
(disk full, database gone) is retried with a doubling pause, the batches
that failed stored again first and in order, so the run goes on by itself
once the store is back. Anything else that goes wrong while driving the run
(a program the engine cannot follow, such as an update it cannot apply, or
a bug) fails the run with a typed error instead of leaving it `running`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

from cairn_server import logs, namespaces
from cairn_server.dispatch.dispatcher import Dispatcher
from cairn_server.dispatch.messages import Assignment
from cairn_server.domain import (
    CheckpointRecord,
    Durability,
    ErrorRecord,
    Json,
    RunRecord,
    RunState,
    StreamMode,
    ThreadStatus,
    WaitReason,
    WaitRecord,
    run_to_json,
)
from cairn_server.engine.decisions import (
    Cancel,
    Decision,
    Deliver,
    Dispatch,
    Emit,
    Finish,
    NewCheckpoint,
    Park,
    Record,
    RetryLater,
)
from cairn_server.engine.functional import FunctionalRun
from cairn_server.engine.graph import GraphRun
from cairn_server.engine.reducers import InvalidUpdate
from cairn_server.engine.tasks import InterruptTimeout, child_task_id
from cairn_server.metrics import Metrics
from cairn_server.runtime import inbox, message_chunks
from cairn_server.runtime.events import EventLog
from cairn_server.runtime.exit_durability import keep_last
from cairn_server.runtime.waiting import Waiting
from cairn_server.store import (
    Lease,
    LeaseLost,
    Store,
    StoreError,
    StoreUnavailable,
    ThreadStatusChange,
    WriteBatch,
    WriteSet,
)
from cairn_server.tracing import NO_TRACE, RunTrace

log = logging.getLogger(__name__)

# A store that cannot take writes is tried again after a pause that doubles
# from the first value to the second.
_STORE_RETRY_FIRST, _STORE_RETRY_MAX = 0.05, 2.0

# The thread's status once its run stops in each state.
THREAD_STATUS_AT_END = {
    RunState.SUCCEEDED: ThreadStatus.IDLE,
    RunState.CANCELLED: ThreadStatus.IDLE,
    RunState.INTERRUPTED: ThreadStatus.INTERRUPTED,
    RunState.FAILED: ThreadStatus.ERROR,
}


# How an attempt a worker took ended, by the message that says so.
_TASK_OUTCOMES: dict[type, str] = {
    inbox.Completed: "succeeded",
    inbox.Failed: "failed",
    inbox.Interrupted: "interrupted",
    inbox.Sleeping: "sleeping",
    inbox.Suspended: "suspended",
    inbox.Lost: "lost",
    inbox.TimedOut: "timed_out",
}
_TIMED: tuple[type, ...] = (inbox.Assigned, *_TASK_OUTCOMES)


class RunAbandoned(Exception):
    """The run's `done` when this replica stopped driving it before it ended:
    another replica took it over, this one is shutting down, or the run
    sleeps (any replica wakes it)."""


class RunHandle:
    def __init__(
        self,
        *,
        run: RunRecord,
        engine: FunctionalRun | GraphRun,
        checkpoint: CheckpointRecord,
        previous: tuple[bool, Json],
        store: Store,
        dispatcher: Dispatcher,
        first_event_id: int,
        clock: Callable[[], float],
        pending: WriteBatch,
        lease: Lease,
        timer_clock: Callable[[], float] = time.time,
        trace: RunTrace = NO_TRACE,
        metrics: Metrics | None = None,
    ) -> None:
        self.run = run
        self._metrics = metrics if metrics is not None else Metrics()
        self._taken: dict[str, tuple[str, float]] = {}
        """Task id -> (name, when a worker took it): cairn_task_execution_seconds."""
        self.trace = trace  # the run's spans (cairn_server/tracing)
        self.lease = lease
        self.engine = engine
        self.checkpoint = checkpoint
        self.previous = previous
        self.log = EventLog(
            run.run_id,
            first_event_id,
            publish_on_append=run.durability is not Durability.SYNC,
            appended=self._metrics.event_log_appends.inc,
        )
        self.done: asyncio.Future[RunRecord] = asyncio.get_running_loop().create_future()
        self._store = store
        self._dispatcher = dispatcher
        self._clock = clock
        self._timer_clock = timer_clock
        self.timer_at: float | None = None
        """Once the run stopped with a timer (it sleeps, or its interrupts
        time out): when it is due (timer clock)."""
        self._batch = pending
        self._unstored: list[WriteBatch] = []
        """Batches whose background commit failed: stored first, in order."""
        self._store_retry_posted = False
        self._inbox: asyncio.Queue[inbox.Message] = asyncio.Queue()
        self._modes = set(run.stream_modes)
        self._timers: list[asyncio.TimerHandle] = []
        self._started: set[str] = set()  # tasks whose start chunk was emitted
        self._refused_local: set[str] = set()  # local calls refused (see FromLocalCopy)
        self._heartbeat_details: dict[str, Json] = {}  # for a task's next assignment
        self._draining = False  # graceful shutdown: send no new task
        self._waiting = Waiting(
            run,
            wait_reason=lambda name, task_id: dispatcher.wait_reason(self._route(name), task_id),
            clock=clock,
            wake=lambda: self.post(inbox.WaitingDue()),
            publish=self._publish_waiting,
        )

    @property
    def run_id(self) -> str:
        return self.run.run_id

    def _route(self, name: str) -> str:
        """`name` as the workers of the run's namespace serve it."""
        return namespaces.beside(self.run.thread_id, name)

    def post(self, message: inbox.Message) -> None:
        self._inbox.put_nowait(message)
        if isinstance(message, _TIMED):
            self._time_task(message)

    def _time_task(self, message: inbox.Message) -> None:
        """cairn_task_execution_seconds, timed when a worker takes an attempt
        and when its outcome arrives, not when the run applies them."""
        if isinstance(message, inbox.Assigned):
            holder = self._dispatcher.holder(message.task_id)
            if holder is not None:
                name = holder.held[message.task_id].name
                self._taken[message.task_id] = (name, time.perf_counter())
            return
        taken = self._taken.pop(getattr(message, "task_id", ""), None)
        if taken is not None:
            name, since = taken
            outcome = _TASK_OUTCOMES[type(message)]
            self._metrics.task_execution.labels(
                name=namespaces.unscoped(name), outcome=outcome
            ).observe(time.perf_counter() - since)

    async def drive(self, start: Callable[[], list[Decision]]) -> None:
        """Execute what `start` decides, then every message, until the run
        finishes."""
        try:
            self.emit_run()
            await self._execute(self._decide(start))
            while not self.done.done():
                message = await self._inbox.get()
                if isinstance(message, inbox.LeaseLost):
                    raise LeaseLost(self.lease)
                if isinstance(message, inbox.StoreRetry):
                    self._store_retry_posted = False
                    await self._commit()
                    continue
                await self._execute(self._decide(functools.partial(self._apply, message)))
        except asyncio.CancelledError:
            raise  # server shutdown: the run stays RUNNING and is recovered
        except LeaseLost:
            self._abandon()
        except Exception as exc:
            try:
                await self._crashed(exc)
            except LeaseLost:
                self._abandon()
            except Exception as again:
                log.exception(
                    "run %s: storing its failure failed", self.run_id, extra=logs.ids(run=self.run)
                )
                if not self.done.done():
                    self.done.set_exception(again)
        finally:
            for timer in self._timers:
                timer.cancel()
            if not self.done.done():  # shutdown or takeover: the run goes on elsewhere
                self.done.set_exception(RunAbandoned(self.run_id))
                self.done.exception()  # retrieved: followers read the run from the store
            self.trace.end(self.run)
            self.log.close()

    def _decide(self, decide: Callable[[], list[Decision]]) -> list[Decision]:
        """The engine's decisions; a program the engine cannot follow (or a
        bug) fails the run rather than leaving it running."""
        try:
            return decide()
        except Exception as exc:
            log.error(
                "run %s: the run cannot go on; failing it",
                self.run_id,
                exc_info=exc,
                extra=logs.ids(run=self.run),
            )
            self._dispatcher.withdraw_run(self.run_id, "the run failed")
            return [Finish("failed", error=_error_of(exc))]

    async def _crashed(self, exc: Exception) -> None:
        """Fail the run after an error outside the engine (storing it, most
        likely): its tasks are withdrawn and what could not be stored is
        dropped, so that its failure can be."""
        log.error(
            "run %s: driving it failed; failing it",
            self.run_id,
            exc_info=exc,
            extra=logs.ids(run=self.run),
        )
        self._dispatcher.withdraw_run(self.run_id, "the run failed")
        if isinstance(exc, StoreError):
            self._batch = WriteBatch()
            self._unstored.clear()
        if not self.done.done():
            await self._finish(Finish("failed", error=_error_of(exc)))

    def _abandon(self) -> None:
        log.warning(
            "run %s was taken over by another replica; stopped here",
            self.run_id,
            extra=logs.ids(run=self.run),
        )
        self._dispatcher.withdraw_run(self.run_id, "the run moved to another replica")

    @property
    def abandoned(self) -> bool:
        """This replica stopped driving the run before it ended."""
        return self.done.done() and isinstance(self.done.exception(), RunAbandoned)

    def drain(self) -> None:
        """Graceful shutdown: tasks not yet sent stay here for the replica
        that takes the run over; tasks in flight may still finish."""
        self._draining = True
        self._dispatcher.withdraw_queued(self.run_id)

    async def flush(self) -> None:
        """Commit what the run holds in memory (durability exit included), so
        the replica that takes it over continues from there; tried once."""
        if (self._batch or self._unstored) and not self.done.done():
            await self._store.commit(self._take_batch())

    # --- messages -------------------------------------------------------------

    def _apply(self, message: inbox.Message) -> list[Decision]:
        engine = self.engine
        self._waiting.observe(message)
        match message:
            case inbox.FromLocalCopy(task_id, inner):
                return [] if task_id in self._refused_local else self._apply(inner)
            case inbox.Assigned(task_id):
                engine.dispatched(task_id)
                return []
            case inbox.Lost(task_id):
                return engine.lost(task_id)
            case inbox.Scheduled(parent_id, index, name, value, policy, None, timeouts):
                if not engine.holds(parent_id):
                    return []
                return engine.schedule(parent_id, index, name, value, policy, timeouts=timeouts)
            case inbox.Scheduled(local=inbox.LocalRun() as local):
                return self._schedule_local(message, local)
            case inbox.Completed(task_id, result, has_save, save):
                self._heartbeat_details.pop(task_id, None)
                return engine.completed(task_id, result, save, has_save)
            case inbox.TimedOut(task_id, error):
                engine.dispatched(task_id)  # a queued task fails as a started one does
                return self._failed(task_id, error)
            case inbox.HeartbeatDetails(task_id, details):
                if engine.holds(task_id):
                    self._heartbeat_details[task_id] = details
                return []
            case inbox.Failed(task_id, error):
                return self._failed(task_id, error)
            case inbox.Interrupted(task_id, index, value, timeout, has_default, default):
                timer = None
                if timeout is not None:
                    timer = InterruptTimeout(self._timer_clock() + timeout, has_default, default)
                return engine.interrupted(task_id, index, value, timer)
            case inbox.Suspended(task_id):
                return engine.suspended(task_id)
            case inbox.Sleeping(task_id, index, duration, wake_time):
                due = wake_time if wake_time is not None else self._timer_clock() + (duration or 0)
                return engine.sleeping(task_id, index, due)
            case inbox.Chunk(task_id, mode, data):
                if engine.holds(task_id):
                    if mode is StreamMode.MESSAGES and mode in self._modes:
                        step = int(self.checkpoint.metadata.get("step", -1)) + 1
                        data = message_chunks.placed(data, step, engine.task_started(task_id))
                    self.emit_chunk(mode, data, engine.namespace_of(task_id))
                return []
            case inbox.RetryDue(task_id):
                return engine.retry_due(task_id)
            case inbox.CancelRequested():
                return [] if engine.finished else engine.cancel()
        return []

    def _failed(self, task_id: str, error: ErrorRecord) -> list[Decision]:
        """The engine's decisions on a failed attempt, and a log line of it
        (the error is the task's own: its type and message, clipped)."""
        task = self.engine.tasks.get(task_id)  # None: a task of a subgraph
        decisions = self.engine.failed(task_id, error, random.random())
        if decisions:
            retried = any(isinstance(d, RetryLater) for d in decisions)
            log.log(
                logging.INFO if retried else logging.WARNING,
                "run %s: task %s (%s) failed on attempt %s: %s: %s%s",
                self.run_id,
                task_id,
                logs.clip(task.name) if task is not None else "?",
                task.attempt if task is not None else "?",
                logs.clip(error.type),
                logs.clip(error.message),
                "; it will be retried" if retried else "",
                extra=logs.ids(run=self.run, task_id=task_id, task_name=task.name if task else ""),
            )
        return decisions

    def _schedule_local(self, call: inbox.Scheduled, local: inbox.LocalRun) -> list[Decision]:
        """A call its worker runs itself: recorded as the child's first attempt
        when the engine accepts it; a refused running copy is withdrawn."""
        engine = self.engine
        decisions: list[Decision] = []
        if engine.holds(call.parent_id):
            timeouts = call.timeouts or self._dispatcher.timeouts(self._route(call.name))
            # A running copy cannot be taken back from its worker on a timeout.
            refused = local.running and timeouts is not None and timeouts.hold_the_worker
            decisions = engine.schedule(
                call.parent_id,
                call.index,
                call.name,
                call.input,
                call.retry_policy,
                local=not refused,
                timeouts=call.timeouts,
            )
        if self._draining and not (local.has_result or local.error is not None):
            # Left to the next owner, which runs it from the entrypoint's replay.
            decisions = []
        accepted = next((d for d in decisions if isinstance(d, Dispatch) and d.local), None)
        if accepted is None:
            if local.running:
                child_id = child_task_id(call.parent_id, call.index)
                self._refused_local.add(child_id)
                self._dispatcher.withdraw([child_id], "the call runs from its history")
            return decisions
        if local.error is not None:
            return decisions + self._failed(accepted.task_id, local.error)
        if local.has_result:
            return decisions + engine.completed(accepted.task_id, local.result, None, False)
        return decisions

    # --- decisions ------------------------------------------------------------

    async def _execute(self, decisions: list[Decision]) -> None:
        self._waiting.decided(decisions)
        sync = self.run.durability is Durability.SYNC
        unsaved = False  # writes or checkpoints that sync durability must commit
        for decision in decisions:
            if unsaved and isinstance(decision, Dispatch | Deliver):
                # Durable before anyone sees it: the parent that gets a
                # result, or the task that runs after it.
                await self._commit()
                unsaved = False
            match decision:
                case Dispatch():
                    self._dispatch(decision)
                case Deliver(parent_id=parent_id):
                    holder = self._dispatcher.holder(parent_id)
                    if holder is not None:
                        holder.outbox.put_nowait(decision)
                case Record(writes, checkpoint_ns, checkpoint_id):
                    self._batch.writes.append(
                        WriteSet(
                            self.run.thread_id,
                            checkpoint_ns,
                            checkpoint_id or self.checkpoint.checkpoint_id,
                            list(writes),
                        )
                    )
                    unsaved = sync
                case Emit(mode, data, namespace):
                    self.emit_chunk(mode, data, namespace)
                case RetryLater(task_id, delay, name):
                    self._metrics.task_retries.labels(name=namespaces.unscoped(name)).inc()
                    loop = asyncio.get_running_loop()
                    self._timers.append(loop.call_later(delay, self.post, inbox.RetryDue(task_id)))
                case Cancel(task_ids):
                    self._dispatcher.withdraw(task_ids, "the run stopped")
                case NewCheckpoint(checkpoint):
                    if not checkpoint.checkpoint_ns:  # not a subgraph's
                        self.checkpoint = checkpoint
                    self._batch.checkpoints.append(checkpoint)
                    unsaved = sync
                case Finish():
                    await self._finish(decision)  # commits everything with the run's end
                    return
                case Park():
                    await self._park(decision)
                    return
        if unsaved:
            await self._commit()
        elif self.run.durability is not Durability.EXIT and self._batch:
            self._commit_in_background()  # events alone need not wait

    def _dispatch(self, decision: Dispatch) -> None:
        has_previous, previous = self.previous if decision.is_root else (False, None)
        announce = StreamMode.TASKS in self._modes or StreamMode.DEBUG in self._modes
        if announce:
            self.emit_task_started(decision)
        if decision.local:
            return  # its worker holds it already
        if self._draining:
            return  # the replica that takes the run over dispatches it again
        timeouts = decision.timeouts
        if timeouts is None:
            timeouts = self._dispatcher.timeouts(self._route(decision.name))
        has_details = decision.task_id in self._heartbeat_details
        self.trace.queued(decision.task_id, decision.name)
        self._dispatcher.submit(
            Assignment(
                task_id=decision.task_id,
                name=decision.name,
                run_id=self.run_id,
                thread_id=self.run.thread_id,
                checkpoint_id=self.checkpoint.checkpoint_id,
                attempt=decision.attempt,
                input=decision.input,
                journal=decision.journal,
                first_fresh_call=decision.first_fresh_call,
                announce_calls=announce,
                stream_messages=StreamMode.MESSAGES in self._modes,
                resume=decision.resume,
                timed_out=decision.timed_out,
                path=decision.path,
                is_root=decision.is_root,
                has_previous=has_previous,
                previous=previous,
                timeouts=timeouts,
                has_heartbeat_details=has_details,
                heartbeat_details=self._heartbeat_details.get(decision.task_id),
                trace_context=self.trace.carrier,
            )
        )

    async def _finish(self, finish: Finish) -> None:
        now = self._clock()
        run = self.run
        run.state = RunState(finish.state)
        run.updated_at = now
        run.interrupts = list(finish.interrupts)
        run.error = finish.error
        if run.state is RunState.SUCCEEDED:
            run.has_output, run.output = True, finish.output
        self._waiting.finished()
        self._batch.runs.append(run)
        self._batch.thread_statuses.append(
            ThreadStatusChange(run.thread_id, THREAD_STATUS_AT_END[run.state], now)
        )
        deadlines = [i.timeout_at for i in run.interrupts if i.timeout_at is not None]
        if deadlines:  # the service answers them then (timers/waker.py)
            self.timer_at = min(deadlines)
            self._batch.timers.append((run.run_id, self.timer_at))
        self.emit_run()
        if run.durability is Durability.EXIT:
            batch = self._batch
            batch.checkpoints, batch.writes = keep_last(batch.checkpoints, batch.writes)
        await self._commit()
        self._metrics.run_ended(run.target, namespaces.namespace_of(run.thread_id), run.state.value)
        self.done.set_result(run)

    async def _park(self, park: Park) -> None:
        """The run sleeps: store what it holds with its timer, give up its
        lease and drive it no further. It holds nothing here meanwhile;
        whichever replica claims it when due resumes it (timers/waker.py)."""
        run = self.run
        self._waiting.finished()
        now = self._timer_clock()
        timer = WaitRecord(WaitReason.TIMER, park.timer_id, park.task_name, now, park.wake_at)
        run.waiting = [timer]
        run.updated_at = self._clock()
        self._batch.runs.append(run)
        self._batch.timers.append((run.run_id, park.wake_at))
        self.log.publish_when_stored()  # a client that sees it sleep may rely on it
        self.emit_run()
        if run.durability is Durability.EXIT:
            batch = self._batch
            batch.checkpoints, batch.writes = keep_last(batch.checkpoints, batch.writes)
        await self._commit()
        log.info(
            "run %s sleeps for %.3f s (timer %s)",
            self.run_id,
            max(park.wake_at - now, 0.0),
            park.timer_id,
            extra=logs.ids(run=run),
        )
        self.timer_at = park.wake_at
        self.done.set_exception(RunAbandoned(self.run_id))
        self.done.exception()  # retrieved: followers read the run from the store

    # --- events ---------------------------------------------------------------

    def emit_run(self) -> None:
        event = self.log.append("run", run_to_json(self.run), self._clock())
        self._batch.events.append(event)

    def _publish_waiting(self, run: RunRecord) -> None:
        """What the run waits on changed (runtime/waiting.py): a `run` event,
        and the run's row, which other replicas read."""
        self.emit_run()
        if run.durability is not Durability.EXIT:
            self._batch.runs.append(run)  # stored with the event, in the background
            return
        # Its events wait for its end; its row goes now. Losing this write
        # loses nothing else: the run's end rewrites the row.
        future = self._store.submit(WriteBatch(runs=[run], lease=self.lease))
        future.add_done_callback(lambda done: done.cancelled() or done.exception())

    def emit_task_started(self, decision: Dispatch) -> None:
        """The engine's `tasks` chunk of a dispatched task, once per run (as
        LangGraph: not again when it is retried or re-dispatched)."""
        if decision.task_id in self._started:
            return
        started = self.engine.task_started(decision.task_id)
        if started is not None:
            self._started.add(decision.task_id)
            self.emit_chunk(StreamMode.TASKS, started, decision.path)

    def emit_chunk(self, mode: StreamMode, data: Json, namespace: tuple[str, ...] = ()) -> None:
        if mode in self._modes:
            self._append_chunk(mode, data, namespace)
        if StreamMode.DEBUG in self._modes and mode in (StreamMode.TASKS, StreamMode.CHECKPOINTS):
            # As LangGraph: a checkpoint's step, and for tasks the step they
            # make (the step of the checkpoint they run from, plus one).
            if mode is StreamMode.CHECKPOINTS:
                kind = "checkpoint"
                step = data.get("metadata", {}).get("step", 0)
            else:
                kind = "task_result" if "result" in data else "task"
                step = int(self.checkpoint.metadata.get("step", -1)) + 1
            debug = {
                "step": step,
                "timestamp": datetime.fromtimestamp(self._clock(), UTC).isoformat(),
                "type": kind,
                "payload": data,
            }
            self._append_chunk(StreamMode.DEBUG, debug, namespace)

    def _append_chunk(self, mode: StreamMode, data: Json, namespace: tuple[str, ...]) -> None:
        payload = {"mode": mode.value, "data": data, "namespace": list(namespace)}
        self._batch.events.append(self.log.append("chunk", payload, self._clock()))

    # --- storing ----------------------------------------------------------------

    def _take_batch(self) -> WriteBatch:
        """What is left to store: the batches that failed first, in order."""
        batch, self._batch = self._batch, WriteBatch()
        if self._unstored:
            earlier = WriteBatch()
            for unstored in self._unstored:
                earlier.extend(unstored)
            earlier.extend(batch)
            batch = earlier
            self._unstored.clear()
        batch.lease = self.lease
        return batch

    async def _commit(self) -> None:
        last_event = self.log.next_id - 1
        batch = self._take_batch()
        if batch:
            await self._store_until_done(batch)
        self.log.publish(last_event)

    async def _store_until_done(self, batch: WriteBatch) -> None:
        """Commit `batch`, waiting out a store that cannot take it now. Every
        write is insert-or-ignore or an upsert, so storing a batch again that
        may have been stored is harmless."""
        pause = _STORE_RETRY_FIRST
        while True:
            try:
                await self._store.commit(batch)
            except StoreUnavailable as error:
                if pause == _STORE_RETRY_FIRST:
                    log.warning(
                        "run %s: the store cannot take its progress (%s); trying again"
                        " until it can",
                        self.run_id,
                        error,
                        extra=logs.ids(run=self.run),
                    )
                await asyncio.sleep(pause)
                pause = min(pause * 2, _STORE_RETRY_MAX)
                continue
            if pause != _STORE_RETRY_FIRST:
                log.info(
                    "run %s: the store took its progress; the run goes on",
                    self.run_id,
                    extra=logs.ids(run=self.run),
                )
            return

    def _commit_in_background(self) -> None:
        if self._unstored:
            self._retry_store()  # keep the order: after the batches that failed
            return
        last_event = self.log.next_id - 1
        batch = self._take_batch()
        future = self._store.submit(batch)
        future.add_done_callback(lambda done: self._committed(done, batch, last_event))

    def _committed(
        self, future: asyncio.Future[object], batch: WriteBatch, last_event: int
    ) -> None:
        if future.cancelled():
            return  # the store is closing: the next owner resumes the run
        error = future.exception()
        if isinstance(error, LeaseLost):
            self.post(inbox.LeaseLost())
            return
        if error is not None:
            # Kept and stored again before anything later (a later batch
            # that failed meanwhile is kept after it).
            self._unstored.append(batch)
            self._retry_store()
            return
        self.log.publish(last_event)

    def _retry_store(self) -> None:
        if not self._store_retry_posted:
            self._store_retry_posted = True
            self.post(inbox.StoreRetry())


def _error_of(exc: Exception) -> ErrorRecord:
    """The error a run fails with when the service cannot drive it further."""
    if isinstance(exc, InvalidUpdate):
        return ErrorRecord("InvalidUpdateError", str(exc))
    return ErrorRecord(
        "RunDriverError",
        f"the service could not continue the run ({type(exc).__name__}); its log has the details",
    )
