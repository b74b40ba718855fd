"""Relays: the workers connected to this replica serve the runs of the others
(DESIGN.md section 7).

While workers are connected here, this replica opens one WorkerService.Connect
stream to every other live replica and says hello as a relay for them: the
union of its workers' registrations and their summed capacity. The other
replica sends a relay only the tasks of names that none of its own workers
serves. A task that comes in is queued here like any other and goes to a
worker connected here; what that worker sends about it (results, calls,
chunks) goes back up the stream as it came, and what the owner sends about it
(child outcomes, cancels, rejections) comes down to that worker.

A stream is opened again whenever the registrations here change or a worker
holding a relayed task goes away: the owner then hands that stream's tasks to
its runs again, as when any worker disconnects.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

import grpc

from cairn.v1 import worker_service_pb2, worker_service_pb2_grpc
from cairn_server import logs, namespaces
from cairn_server.api import convert
from cairn_server.api.message_sizes import FIELD_OVERHEAD
from cairn_server.api.values import to_json
from cairn_server.dispatch.dispatcher import Dispatcher, WorkerConnection
from cairn_server.dispatch.messages import Assignment, Forwarded, Registration
from cairn_server.domain import ErrorRecord, TaskKind
from cairn_server.engine.decisions import JournalEntry
from cairn_server.store import Store

log = logging.getLogger(__name__)
pb = worker_service_pb2

_KIND_PB = {TaskKind.TASK: pb.TASK_KIND_TASK, TaskKind.ENTRYPOINT: pb.TASK_KIND_ENTRYPOINT}
_ENDS = ("completed", "failed", "interrupted", "sleeping", "suspended")
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", -1)]
"""A relay stream reads what its owner sends whole: messages up to the
owner's limit (2 * max_payload_bytes + 1 MiB, a resume assignment holding
an input and resume values at the payload limit). gRPC's default of 4 MiB
would end the stream, and the owner would hand the task to it again."""
_RECENT = 4096
"""Tasks remembered after their worker reported their end, so that a
rejection of that report still finds the worker."""


@dataclass(frozen=True, slots=True)
class Offer:
    """What the workers connected here serve, as one relay hello says it."""

    registrations: tuple[Registration, ...]
    max_tasks: int
    max_entrypoints: int

    @classmethod
    def of(cls, workers: Iterable[WorkerConnection]) -> Offer:
        names: dict[str, Registration] = {}
        max_tasks = max_entrypoints = 0
        for worker in workers:
            names.update(worker.registrations)
            max_tasks += worker.max_tasks
            max_entrypoints += worker.max_entrypoints
        return cls(tuple(names[n] for n in sorted(names)), max_tasks, max_entrypoints)

    def registrations_pb(self) -> list[pb.Registration]:
        found = []
        for registration in self.registrations:
            namespace, name = namespaces.split(registration.name)
            message = pb.Registration(
                name=name, namespace=namespace, kind=_KIND_PB[registration.kind]
            )
            if registration.retry_policy is not None:
                message.retry_policy.CopyFrom(convert.retry_policy_pb(registration.retry_policy))
            if registration.timeouts is not None:
                message.timeouts.CopyFrom(convert.task_timeouts_pb(registration.timeouts))
            found.append(message)
        return found


@dataclass(frozen=True, slots=True)
class PeerAccess:
    """How this replica reaches the others: TLS when the replicas serve it,
    and the bearer credential that shows it is a replica (DESIGN.md 8.2:
    relay streams authenticate as replicas)."""

    credentials: grpc.ChannelCredentials | None = None
    credential: str = ""

    def channel(self, address: str) -> grpc.aio.Channel:
        if self.credentials is None:
            return grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
        return grpc.aio.secure_channel(address, self.credentials, options=_CHANNEL_OPTIONS)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.credential}"),) if self.credential else ()


class RelayLink:
    """One stream to another replica, for the workers connected here."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        replica_id: str,
        peer: str,
        address: str,
        offer: Offer,
        peers: PeerAccess,
    ) -> None:
        self._dispatcher = dispatcher
        self._peers = peers
        self._replica_id = replica_id
        self.peer = peer
        self.address = address
        self.offer = offer
        self._outgoing: asyncio.Queue[pb.ConnectRequest] = asyncio.Queue()
        self._recent: OrderedDict[str, WorkerConnection] = OrderedDict()
        self._gathering: dict[str, pb.TaskAssignment] = {}
        """Assignments whose journal pages are still coming, by task id."""
        self._batch_bytes = 0
        """The most bytes of requests sent as one batch: the owner's
        max_payload_bytes, from its welcome."""
        self._stopped = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    def stop(self) -> None:
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def lost(self, assignment: Assignment) -> None:
        """A worker holding a task of this stream went away: the owner gets
        the stream's tasks back by the stream ending, and a new one opens."""
        log.info(
            "relay to %s: a worker holding task %s left",
            self.peer,
            assignment.task_id,
            extra=logs.ids(assignment=assignment),
        )
        self.stop()

    def failed(self, assignment: Assignment, error: ErrorRecord) -> None:
        """A relayed task could not be sent to the worker here: its owner
        fails it, as if the worker had reported the error."""
        failed = pb.TaskFailed(task_id=assignment.task_id, error=convert.error_pb(error))
        self._outgoing.put_nowait(pb.ConnectRequest(failed=failed))

    # --- up: what workers here say about relayed tasks ---------------------------------

    def forward(self, worker: WorkerConnection, request: pb.ConnectRequest) -> None:
        """Send a worker's message about a task of this stream to its owner,
        keeping this replica's record of what the worker holds."""
        kind = request.WhichOneof("kind")
        if kind in _ENDS:
            task_id = getattr(request, kind or "").task_id
            self._dispatcher.release(worker, task_id)
            self._recent[task_id] = worker
            if len(self._recent) > _RECENT:
                self._recent.popitem(last=False)
        elif kind == "schedule" and request.schedule.WhichOneof("local") == "local_running":
            self._hold_local_call(worker, request.schedule)
        self._outgoing.put_nowait(request)

    def _hold_local_call(self, worker: WorkerConnection, message: pb.ScheduleTask) -> None:
        """The worker runs a call itself: its reports come through here too.
        When that copy cannot be held here, the worker drops it and the
        owner is told a plain call."""
        parent = self._dispatcher.held_by(worker, message.parent_task_id)
        assert parent is not None and parent.relay is self
        if not self._dispatcher.hold_local_call(worker, parent, message.index, message.name):
            message.ClearField("local_running")

    # --- down: what the owner sends ----------------------------------------------------

    def _receive(self, response: pb.ConnectResponse) -> None:
        kind = response.WhichOneof("kind")
        if kind == "assignment":
            if response.assignment.journal_continues:  # its pages follow
                self._gathering[response.assignment.task_id] = response.assignment
            else:
                self._dispatcher.submit(self._assignment(response.assignment))
        elif kind == "journal_page":
            self._page(response.journal_page)
        elif kind == "cancel":
            self._gathering.pop(response.cancel.task_id, None)
            self._dispatcher.withdraw_relayed(self, response.cancel.reason, response.cancel.task_id)
        elif kind == "child_outcome":
            self._to_holder(response.child_outcome.parent_task_id, response)
        elif kind == "rejected":
            self._to_holder(response.rejected.task_id, response)

    def _page(self, page: pb.JournalPage) -> None:
        """More of a gathered assignment's journal; once whole, it is queued
        here like any other (and paged again to a worker that reads pages)."""
        assignment = self._gathering.get(page.task_id)
        if assignment is None:
            return
        assignment.journal.extend(page.entries)
        if page.last:
            del self._gathering[page.task_id]
            self._dispatcher.submit(self._assignment(assignment))

    def _to_holder(self, task_id: str, response: pb.ConnectResponse) -> None:
        worker = self._dispatcher.holder(task_id)
        if worker is None or worker.held[task_id].relay is not self:
            worker = self._recent.get(task_id)
        if worker is not None:
            worker.outbox.put_nowait(Forwarded(response))

    def _assignment(self, message: pb.TaskAssignment) -> Assignment:
        """A task of the owner's run, as the owner sent it: its timeouts are
        passed on to the worker and enforced by the owner, which holds it."""
        has_previous = message.HasField("previous")
        has_details = message.HasField("heartbeat_details")
        return Assignment(
            task_id=message.task_id,
            name=message.name,
            run_id=message.run_id,
            thread_id=namespaces.scoped(message.namespace or namespaces.DEFAULT, message.thread_id),
            checkpoint_id=message.checkpoint_id,
            attempt=message.attempt,
            input=to_json(message.input),
            journal=tuple(
                JournalEntry(e.index, e.name, e.task_id, to_json(e.result)) for e in message.journal
            ),
            resume=tuple(to_json(v) for v in message.resume),
            timed_out=tuple(message.timed_out),
            path=tuple(message.path),
            is_root=False,
            has_previous=has_previous,
            previous=to_json(message.previous) if has_previous else None,
            first_fresh_call=message.first_fresh_call,
            announce_calls=message.announce_calls,
            stream_messages=message.stream_messages,
            relay=self,
            timeouts=(
                convert.task_timeouts(message.timeouts, "timeouts")
                if message.HasField("timeouts")
                else None
            ),
            has_heartbeat_details=has_details,
            heartbeat_details=to_json(message.heartbeat_details) if has_details else None,
            trace_context=dict(message.trace_context) or None,
        )

    # --- the stream --------------------------------------------------------------------

    def _hello(self) -> pb.ConnectRequest:
        return pb.ConnectRequest(
            hello=pb.WorkerHello(
                worker_id=f"relay-{self._replica_id}",
                registrations=self.offer.registrations_pb(),
                max_concurrent_tasks=self.offer.max_tasks,
                max_concurrent_entrypoints=self.offer.max_entrypoints,
                sdk_language="cairn-relay",
                identity=f"replica {self._replica_id}",
                accepts_batches=True,
                accepts_journal_pages=True,
                relay_replica_id=self._replica_id,
            )
        )

    async def _requests(self) -> AsyncIterator[pb.ConnectRequest]:
        yield self._hello()
        left: pb.ConnectRequest | None = None
        while True:
            first = left if left is not None else await self._outgoing.get()
            message, left = batch(first, self._outgoing, self._batch_bytes)
            yield message

    async def _run(self) -> None:
        try:
            async with self._peers.channel(self.address) as channel:
                stream = worker_service_pb2_grpc.WorkerServiceStub(channel).Connect(
                    self._requests(), metadata=self._peers.metadata
                )
                reading = asyncio.ensure_future(self._read(stream))
                stopping = asyncio.ensure_future(self._stopped.wait())
                await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stream.cancel()
                for waiting in (reading, stopping):
                    waiting.cancel()
                await asyncio.gather(reading, stopping, return_exceptions=True)
        except Exception:
            log.debug("relay to %s at %s ended", self.peer, self.address, exc_info=True)
        finally:
            self.stop()
            self._dispatcher.withdraw_relayed(self, f"the relay to replica {self.peer} closed")

    async def _read(self, stream: AsyncIterator[pb.ConnectResponse]) -> None:
        async for response in stream:
            if response.WhichOneof("kind") == "welcome":
                self._batch_bytes = response.welcome.max_payload_bytes
                log.info("relaying tasks of replica %s at %s", self.peer, self.address)
            elif response.WhichOneof("kind") == "batch":
                for item in response.batch.responses:
                    self._receive(item)
            else:
                self._receive(response)


def batch(
    first: pb.ConnectRequest, ready: asyncio.Queue[pb.ConnectRequest], budget: int
) -> tuple[pb.ConnectRequest, pb.ConnectRequest | None]:
    """`first` and the requests ready after it, as one message of at most
    `budget` bytes of requests (or `first` alone, whatever its size); and the
    ready request taken that did not fit, which starts the next message.

    The owner refuses a message over its limit (2 * max_payload_bytes +
    1 MiB) by ending the stream, and then hands this stream's tasks to it
    again: a batch of all that is ready (reports of many tasks, each within
    the payload limit) could exceed it."""
    requests = [first]
    size = first.ByteSize() + FIELD_OVERHEAD
    left = None
    while not ready.empty():
        request = ready.get_nowait()
        size += request.ByteSize() + FIELD_OVERHEAD
        if size > budget:
            left = request
            break
        requests.append(request)
    if len(requests) == 1:
        return first, left
    return pb.ConnectRequest(batch=pb.ConnectRequestBatch(requests=requests)), left


class Relays:
    """This replica's relay streams, kept in line with its workers and the
    live replicas."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        store: Store,
        *,
        replica_id: str,
        every: float,
        clock: Callable[[], float],
        peers: PeerAccess | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self._peers = peers or PeerAccess()
        self._store = store
        self._replica_id = replica_id
        self._every = every
        self._clock = clock
        self._links: dict[str, RelayLink] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._prune({})

    def forward(self, worker: WorkerConnection, request: pb.ConnectRequest) -> bool:
        """Send a worker's message up its relay when it is about a relayed
        task; False when it is about a task of this replica's runs."""
        kind = request.WhichOneof("kind")
        if kind not in (*_ENDS, "schedule", "chunk", "heartbeat"):
            return False
        message = getattr(request, kind or "")
        task_id = message.parent_task_id if kind == "schedule" else message.task_id
        held = self._dispatcher.held_by(worker, task_id)
        if held is None or not isinstance(held.relay, RelayLink):
            return False
        held.relay.forward(worker, request)
        return True

    async def _keep(self) -> None:
        changed = self._dispatcher.workers_changed
        while True:
            changed.clear()
            try:
                await self._refresh()
            except Exception:
                log.warning("refreshing the relays failed; trying again", exc_info=True)
            # Not wait_for: on Python 3.11 it drops a cancel that comes as
            # the event is set, and this loop would outlive its server.
            waiting = asyncio.ensure_future(changed.wait())
            try:
                await asyncio.wait({waiting}, timeout=self._every)
            finally:
                waiting.cancel()

    async def _refresh(self) -> None:
        offer = Offer.of(self._dispatcher.direct_workers())
        peers: dict[str, str] = {}
        if offer.registrations:
            live = await self._store.live_replicas(self._clock())
            peers = {r: a for r, a in live.items() if r != self._replica_id and a}
        await self._prune(peers, offer)
        for peer, address in peers.items():
            if peer not in self._links:
                link = RelayLink(
                    self._dispatcher, self._replica_id, peer, address, offer, self._peers
                )
                self._links[peer] = link

    async def _prune(self, peers: dict[str, str], offer: Offer | None = None) -> None:
        """Stop the links to replicas gone, moved or offered something else."""
        for peer, link in list(self._links.items()):
            if link.stopped or peers.get(peer) != link.address or link.offer != offer:
                link.stop()
                await asyncio.gather(link.task, return_exceptions=True)
                del self._links[peer]
